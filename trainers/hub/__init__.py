"""Sharing on the Hugging Face Hub: model cards rendered from a run's records, and uploads."""
