"""Quickstart, the README's main job end to end on the repo's own data: pretrain a tiny BriskBERT, use it, reload it
where BriskBERT is not installed, fine-tune and score it on SST-2, render its model card, export it to ONNX.

    python scripts/quickstart.py                                  # the bundled recipe `quickstart`
    python scripts/quickstart.py --pretrain_steps 200             # any QuickstartConfig field

The steps: trainers/quickstart.py.
"""

import sys

from briskbert.trainers.config import parse_config
from briskbert.trainers.quickstart import QuickstartConfig, run_quickstart


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--config" or a.startswith("--config=") for a in argv):
        argv = ["--config", "quickstart", *argv]
    run_quickstart(parse_config(QuickstartConfig, argv))


if __name__ == "__main__":
    main()
