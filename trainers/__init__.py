"""What the launchers in scripts/ run, grouped by concern (each launcher parses its config and makes one call here).
Listed bottom to top: each imports only those above it in this list (tests/test_import_layers.py holds that).

- `resources`, `measuring`, `training`, `metrics_log`: the recipes, templates and samples that ship inside the
  package; useful FLOPs, MFU and the machine probes; what both training loops share (precision, Accelerator,
  AdamW groups, the log).
- `config`: typed recipes from YAML and the command line.
- `data`: corpus loading, packing, MLM masking, data order, tokenizers.
- `conversion`: BERT / MosaicBERT checkpoints in; ONNX / torch.export and sentence-transformers folders out.
- `tasks`: the task registry, features and scoring that fine-tuning and evaluation share.
- `inference`: int8 (and its export), the ONNX runner, the corpus embedding job, fill-mask.
- `hub`: model cards and uploads.
- `finetuning`: the fine-tuning loop and PEFT adapters.
- `evaluation`: the multi-task harness, results tables, spread, feature drift, length extrapolation.
- `pretraining`: the MLM pretraining loop, its checkpoints, and the comparison of runs.
- `speed`: the side-by-side benchmarks (a consumer of everything below).
- `variants`: domain variants built stage by stage.
"""
