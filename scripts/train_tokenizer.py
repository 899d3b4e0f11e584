"""Train a WordPiece tokenizer for BriskBERT, or extend an existing one with a domain's word pieces.

    briskbert-train-tokenizer --files corpus/*.txt --vocab-size 30528 --output tokenizers/mine [--cased]
    briskbert-train-tokenizer --dataset org/corpus --column text --vocab-size 32000 --output ...
    briskbert-train-tokenizer --extend data/tokenizer --num-new-tokens 2000 --files bio.txt --output ...

The vocabulary is padded with [unused*] tokens to a multiple of 64. The output folder loads with
`AutoTokenizer.from_pretrained(output)`. Word pieces per (whitespace) word on the training text are printed
(and, when extending, for the base tokenizer too), the number to watch for a domain tokenizer.
"""

import argparse
import json
from pathlib import Path

from briskbert.trainers.data.tokenizer import UNICODE_NORMALIZATIONS, TokenizerJob, train_tokenizer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--files", nargs="+", help="text/json/jsonl/parquet files or folders (.gz too)")
    source.add_argument("--dataset", help="a hub dataset id")
    parser.add_argument("--dataset-config", default=None)
    parser.add_argument("--column", default="text", help="the column holding the text")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--vocab-size", type=int, default=30528)
    parser.add_argument("--cased", action="store_true", help="keep case (default: lowercase, like bert-base-uncased)")
    accents = parser.add_mutually_exclusive_group()
    accents.add_argument("--strip-accents", dest="strip_accents", action="store_true", default=None)
    accents.add_argument("--keep-accents", dest="strip_accents", action="store_false")
    parser.add_argument("--unicode-normalization", choices=sorted(UNICODE_NORMALIZATIONS), default="none")
    parser.add_argument("--arabic-normalization", action="store_true",
                        help="unify alef/hamza/yeh forms, drop tatweel and diacritics (Arabic-script dialects)")
    parser.add_argument("--compare-with", default=None,
                        help="also report word pieces per word of this tokenizer (e.g. the general one) on the text")
    parser.add_argument("--min-frequency", type=int, default=2)
    parser.add_argument("--max-texts", type=int, default=None, help="train on at most this many texts")
    parser.add_argument("--extend", default=None, help="tokenizer folder or hub id to extend instead of training")
    parser.add_argument("--num-new-tokens", type=int, default=1000)
    args = parser.parse_args(argv)
    report = train_tokenizer(TokenizerJob(**vars(args)))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
