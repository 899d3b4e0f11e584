"""Masked-language-model pretraining: the loop, its checkpoints, and comparing runs by wall-clock."""
