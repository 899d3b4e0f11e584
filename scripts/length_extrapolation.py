"""ALiBi length extrapolation: held-out MLM loss of a model trained at 128 tokens, at 128/256/512/1024 tokens.

    python scripts/length_extrapolation.py --model runs/tiny/final
    python scripts/length_extrapolation.py --model runs/tiny/final --lengths 128 256 512 1024 --tokens 8176

Writes <model>/length_extrapolation.json, which the model card reads. How it is measured:
trainers/evaluation/extrapolation.py.
"""

import argparse
import json
from pathlib import Path

import torch

from briskbert.trainers.evaluation.extrapolation import DEFAULT_TEXT, measure
from briskbert.trainers.resources import data_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a saved BriskBERT masked-LM folder")
    parser.add_argument("--text", type=Path, default=Path(data_path(DEFAULT_TEXT)))
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--tokens", type=int, default=4 * 1022, help="tokens scored at every length (default: 4 "
                                                                     "rows of 1024)")
    parser.add_argument("--mlm-probability", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="default: <model>/length_extrapolation.json")
    args = parser.parse_args(argv)
    if any(length < 3 for length in args.lengths) or args.tokens < max(args.lengths) - 2:
        parser.error("--lengths must be at least 3 and --tokens at least the longest length minus 2")
    torch.manual_seed(args.seed)
    record = measure(args.model, args.text, args.lengths, args.tokens, args.mlm_probability, args.seed)
    output = args.output or Path(args.model) / "length_extrapolation.json"
    output.write_text(json.dumps(record, indent=2))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
