"""What the launchers in scripts/ run, grouped by concern (each launcher parses its config and makes one call here).

- `config`, `resources`: typed recipes from YAML and the command line; the recipes, card templates and sample
  data that ship inside the package.
- `training`, `metrics_log`: what both training loops share (precision, Accelerator, AdamW groups, the log).
- `data`: corpus loading, packing, MLM masking, data order, tokenizers.
- `pretraining`: the MLM pretraining loop, its checkpoints, and the comparison of runs.
- `finetuning`: the fine-tuning loop and PEFT adapters.
- `evaluation`: the task registry, features, results tables, the multi-task harness, length extrapolation.
- `variants`: domain variants built stage by stage.
- `hub`: model cards and uploads.
- `conversion`: BERT / MosaicBERT checkpoints in, ONNX / torch.export and sentence-transformers out.
- `speed`: useful FLOPs, MFU and the side-by-side benchmark.
"""
