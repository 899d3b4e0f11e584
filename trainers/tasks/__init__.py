"""The downstream tasks, below both fine-tuning and evaluation: the registry (one YAML per task in
hub_configs/tasks/), the features a task's rows become, and its scoring."""
