"""Scoring models on downstream tasks: the harness over tasks and seeds, results, spread, drift and length
extrapolation (the tasks themselves, their features and metrics are in trainers/tasks/)."""
