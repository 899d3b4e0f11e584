"""Checkpoints in and out: exact BERT / MosaicBERT conversion, ONNX and torch.export, sentence-transformers."""
