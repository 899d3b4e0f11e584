"""The figures docs/scale.md scales up from, measured on this machine: briskbert-prepare-data's tokens/s per worker
process; the start-up time of briskbert-pretrain on the prepared folder and on the raw text, and its peak resident
memory, at two corpus sizes 10x apart, each in a fresh process with an empty datasets cache; the tokens/s one loader
process feeds; a base checkpoint's size and write time.

    python scripts/measure_scale.py --corpus my_corpus/ --output-dir runs/scale

Every ScaleConfig field (trainers/speed/scale.py) is a flag.
"""

from briskbert.trainers.config import parse_config
from briskbert.trainers.speed.scale import ScaleConfig, measure_scale


def main(argv: list[str] | None = None) -> None:
    measure_scale(parse_config(ScaleConfig, argv))


if __name__ == "__main__":
    main()
