"""Fine-tune any transformers encoder (BriskBERT, BERT, ...) on one task, fully or with LoRA, under `accelerate launch`.

    accelerate launch scripts/finetune.py --model runs/tiny/final --task sst2 --output-dir runs/sst2 \\
        --data-dir ../shared/data [--peft lora [--merge]] [--max-train-samples N] [--max-steps N] [--seed S]
    ... --peft-config my_ia3.json       any other PEFT method, as a PEFT config file
    ... --max-steps 0 --model runs/sst2/final          score a fine-tuned model (or adapter folder) only

Per-task defaults: hub_configs/tasks/<task>.yaml (replaced by --config other.yaml); every FinetuneConfig field
(trainers/finetuning.py) is a flag. Writes <output-dir>/final/ (the best model, or adapter), results.json,
metrics.jsonl and TensorBoard logs. The loop itself is `finetune()` in trainers/finetuning.py, which
scripts/evaluate.py runs for every task and seed.
"""

import sys
from pathlib import Path

# This folder also holds evaluate.py (the harness), which Python would import in place of the `evaluate`
# library that scores the tasks: take the folder off the import path first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from briskbert.trainers.finetuning import finetune, finetune_config  # noqa: E402


def main(argv=None) -> dict:
    return finetune(finetune_config(argv))


if __name__ == "__main__":
    main()
