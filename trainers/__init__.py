"""Reusable pieces of the launchers in scripts/: data, masking, packing, checkpoint I/O and metrics."""
