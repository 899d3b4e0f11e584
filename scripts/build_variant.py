"""Build a domain or language variant of BriskBERT with one command, stage by stage: corpus -> tokenizer ->
pretraining -> downstream scores -> model card -> comparison with a baseline. Each stage stops at its artifact and
is skipped on a rerun once finished.

    briskbert-build-variant --variant bio --preset tiny --output-dir runs/bio-tiny --data-dir data
    briskbert-build-variant --variant general --preset mini --output-dir runs/general-mini --data-dir my_data
    briskbert-build-variant --variant bio --preset mini --strategy continue \
        --base-model runs/general-mini/pretrain/final --output-dir runs/bio-mini-continue ...
    ... --from-stage evaluate          # redo from a stage on (e.g. after changing the tasks)
    ... --compare-with runs/general-mini runs/bio-mini-continue   # print the scores side by side
    ... --baseline-model runs/general-mini/pretrain/final         # score the general model beside it (compare)
    briskbert-build-variant --variant bio-from-bert --output-dir runs/bio-from-bert --data-dir my_data
        # a real BERT converted and adapted, against BertForMaskedLM adapted the same way and no adaptation

--variant (or --config) is a bundled recipe's name (hub_configs/variants/: general, bio, legal, german, tunisian,
bio-from-bert and its ablations bio-from-bert-vocab, -corpus-only, -tasks-only and -first-recipe,
legal-from-bert) or a YAML path; --data-dir is a folder laid out like the
repo's data/ (corpus/<domain>/, the tasks' folders). The stages and strategies: trainers/variants/build.py.
"""

import argparse
from pathlib import Path

from briskbert.trainers.resources import data_path
from briskbert.trainers.variants.build import PRESET_PRETRAINING, STRATEGIES, VariantBuild, build_variant
from briskbert.trainers.variants.stages import STAGES


def parse_args(argv: list[str] | None = None) -> VariantBuild:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", "--config", dest="variant", required=True,
                        help="a bundled variant recipe (bio, variants/bio) or a YAML path")
    parser.add_argument("--preset", choices=sorted(PRESET_PRETRAINING), default="tiny")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--strategy", choices=STRATEGIES, default=None,
                        help="default: the recipe's strategy, else scratch")
    parser.add_argument("--base-model", default=None, help="continue: the general BriskBERT to start from; "
                        "from-bert: a transformers BERT id or folder (default: the recipe's)")
    parser.add_argument("--data-dir", type=Path, default=Path(data_path("data")),
                        help="folder laid out like the repo's data/ (default: ./data, else the bundled samples)")
    parser.add_argument("--from-stage", choices=STAGES, default=None)
    parser.add_argument("--tasks", default=None, help="comma-separated tasks instead of the recipe's")
    parser.add_argument("--pretrain-args", nargs=argparse.REMAINDER, default=[],
                        help="extra briskbert-pretrain flags, e.g. --pretrain-args --max-steps 100 (last option)")
    parser.add_argument("--compare-with", nargs="*", type=Path, default=[], help="other variant run folders")
    parser.add_argument("--baseline-model", default=None,
                        help="a general model (folder or hub id) scored on the same tasks for comparison (the "
                        "compare stage; its tokenizer's pieces/word too)")
    parser.add_argument("--max-train-samples", type=int, default=None, help="cap each task's training rows")
    parser.add_argument("--max-eval-samples", type=int, default=None, help="cap each task's scored rows")
    return VariantBuild(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    build_variant(parse_args(argv))


if __name__ == "__main__":
    main()
