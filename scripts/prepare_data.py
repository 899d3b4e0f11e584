"""Tokenize and pack a corpus once, into a folder that every pretraining run then memory-maps (no tokenizing at
start-up, resident memory independent of the corpus size), under `accelerate launch` like the other jobs or alone.

    briskbert-prepare-data --train-data my_corpus/ --tokenizer my-tokenizer --max-seq-length 128 --output shards/ \
        --num-proc 8
    briskbert-pretrain --config mini --tokenizer my-tokenizer --train-data shards/ --output-dir runs/mini

The folder records the tokenizer's fingerprint and the sequence length, and a run with another tokenizer or length
refuses it. Every PrepareDataConfig field (trainers/data/prepared.py) is a flag; --config takes a recipe of them.
"""

from briskbert.trainers.config import parse_config
from briskbert.trainers.data.prepared import PrepareDataConfig, prepare_corpus


def main(argv: list[str] | None = None) -> None:
    prepare_corpus(parse_config(PrepareDataConfig, argv))


if __name__ == "__main__":
    main()
