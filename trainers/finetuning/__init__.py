"""Fine-tuning on one registered task, fully or through a PEFT adapter."""
