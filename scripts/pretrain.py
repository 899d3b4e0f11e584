"""Pretrain BriskBERT (or the HF-BERT baseline) with masked language modelling, under `accelerate launch`.

    briskbert-pretrain --config tiny-cpu --output-dir runs/tiny         # or: python scripts/pretrain.py ...
    accelerate launch -m briskbert.scripts.pretrain --config mini --train-data my_corpus/ --output-dir runs/mini
    ... --resume                      continue from the latest complete checkpoint in <output-dir>/checkpoints
    ... --init-from <folder|hub id>   continued pretraining of a pretrained checkpoint

`--config` is a recipe YAML or the name of a bundled one; every PretrainConfig field
(trainers/pretraining/loop.py) is also a flag. The loop is `pretrain()` there.
"""

from briskbert.trainers.config import parse_config
from briskbert.trainers.pretraining.loop import PretrainConfig, pretrain


def main(argv: list[str] | None = None) -> None:
    pretrain(parse_config(PretrainConfig, argv))


if __name__ == "__main__":
    main()
