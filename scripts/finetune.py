"""Fine-tune any transformers encoder (BriskBERT, BERT, ...) on one task, fully or with LoRA, under `accelerate launch`.

    briskbert-finetune --model runs/tiny/final --task sst2 --data-dir data --output-dir runs/sst2 \\
        [--peft lora [--merge]] [--max-train-samples N] [--max-steps N] [--seed S]
    accelerate launch -m briskbert.scripts.finetune --model ... --task conll2003 ...
    ... --peft-config my_ia3.json       any other PEFT method, as a PEFT config file
    ... --max-steps 0 --model runs/sst2/final          score a fine-tuned model (or adapter folder) only

Per-task defaults: the task's registry entry (hub_configs/tasks/<task>.yaml, `finetune:`), replaced by
`--config other.yaml`; every FinetuneConfig field (trainers/finetuning/loop.py) is a flag. Writes
<output-dir>/final/ (the best model, or adapter), results.json, metrics.jsonl and TensorBoard logs.
"""

from briskbert.trainers.finetuning.loop import finetune, finetune_config


def main(argv: list[str] | None = None) -> None:
    finetune(finetune_config(argv))


if __name__ == "__main__":
    main()
