"""Fine-tune and score finished pretraining runs on the same tasks, and plot the GLUE average over pretraining
minutes, one line per model: the from-scratch comparison at several budgets (docs/pretraining-comparison.md).

    python scripts/compare_downstream.py runs/scratch/briskbert-10 runs/scratch/bert-10 \\
        runs/scratch/briskbert-25 runs/scratch/bert-25 --plot docs/from-scratch-glue.png \\
        -- --tasks sst2,mrpc,stsb,rte,cola --data-dir data --max-train-samples 2000 -- --num-train-epochs 3

The flags after the first `--` are briskbert-evaluate's, the same for every run (after a second `--`: the
fine-tuning flags). Each run's scores are kept in <run>/downstream_results.json and not recomputed.
"""

import argparse
import sys
from pathlib import Path

from briskbert.trainers.pretraining.downstream import compare_downstream


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, evaluation = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="briskbert-pretrain output folders with a final/ model")
    parser.add_argument("--plot", type=Path, default=None, help="PNG of the GLUE average over pretraining minutes")
    args = parser.parse_args(own)
    if not any(flag == "--tasks" or flag.startswith("--tasks=") for flag in evaluation):
        parser.error("name the tasks after `--`, e.g. -- --tasks sst2,mrpc,stsb,rte,cola --data-dir data")
    compare_downstream(args.runs, evaluation, args.plot)


if __name__ == "__main__":
    main()
