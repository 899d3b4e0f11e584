"""Honest speed numbers: useful FLOPs, MFU, and BriskBERT side by side with BERT and ModernBERT."""
