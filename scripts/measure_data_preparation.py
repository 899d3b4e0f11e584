"""What briskbert-prepare-data buys a pretraining run: the preparation's tokens/s per worker process, the start-up time
of briskbert-pretrain on the prepared folder and on the raw text, and its peak resident memory at two corpus sizes
10x apart, each in a fresh process with an empty datasets cache.

    python scripts/measure_data_preparation.py --corpus my_corpus/ --output-dir runs/data-preparation

Every DataPreparationConfig field (trainers/speed/data_preparation.py) is a flag. Figures measured so: docs/scale.md.
"""

from briskbert.trainers.config import parse_config
from briskbert.trainers.speed.data_preparation import DataPreparationConfig, measure_data_preparation


def main(argv: list[str] | None = None) -> None:
    measure_data_preparation(parse_config(DataPreparationConfig, argv))


if __name__ == "__main__":
    main()
