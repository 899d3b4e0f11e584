"""Running a BriskBERT fast on a CPU: int8 quantization, the ONNX runner and the corpus embedding job."""
