"""Compare pretraining runs by wall-clock: eval MLM loss over training time, throughput, MFU, and how long the
first run took to reach the other's final eval loss.

    python scripts/compare_pretraining.py runs/briskbert-mini runs/bert-mini --plot docs/eval_loss.png

Reads each run's metrics.jsonl and summary.json (trainers/pretraining/compare.py).
"""

import argparse
from pathlib import Path

from briskbert.trainers.pretraining.compare import compare_runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders; the first is compared with each other")
    parser.add_argument("--plot", type=Path, default=None, help="PNG of eval loss over training minutes")
    args = parser.parse_args(argv)
    compare_runs(args.runs, args.plot)


if __name__ == "__main__":
    main()
