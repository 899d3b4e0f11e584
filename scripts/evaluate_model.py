"""Score a checkpoint on GLUE, SuperGLUE, NER, QA and domain tasks: fine-tune per task and seed, then report.

    briskbert-evaluate --model runs/tiny/final --tasks glue --data-dir data --seeds 3 --output runs/eval/tiny.json \\
        [--max-train-samples N] [--peft lora] [--mnli-init] [-- --num-train-epochs 1]
    accelerate launch --num_processes 8 -m briskbert.scripts.evaluate_model --model X --tasks glue ...  # DDP runs
    accelerate launch --num_processes 8 -m briskbert.scripts.evaluate_model --model X --tasks glue --spread runs

Flags after `--` go to every fine-tuning run. The harness (tasks, seeds, --mnli-init, --spread) is
trainers/evaluation/harness.py. (This file is not named evaluate.py: run as a script, its folder comes first
on the import path and would stand in for the `evaluate` library that scores the tasks.)
"""

from briskbert.trainers.evaluation.harness import evaluate_config, evaluate_model


def main(argv: list[str] | None = None) -> None:
    evaluate_model(*evaluate_config(argv))


if __name__ == "__main__":
    main()
