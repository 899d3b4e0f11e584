"""Scoring models on downstream tasks: the task registry, features, metrics, results and the harness."""
