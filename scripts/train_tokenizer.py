"""Train a WordPiece tokenizer for BriskBERT, or extend an existing one with a domain's word pieces.

    python scripts/train_tokenizer.py --files corpus/*.txt --vocab-size 30528 --output tokenizers/mine [--cased]
    python scripts/train_tokenizer.py --dataset org/corpus --column text --vocab-size 32000 --output ...
    python scripts/train_tokenizer.py --extend data/tokenizer --num-new-tokens 2000 --files bio.txt --output ...

The vocabulary is padded with [unused*] tokens to a multiple of 64. The output folder loads with
`AutoTokenizer.from_pretrained(output)`. Average word pieces per word on the training text are printed
(and, when extending, for the base tokenizer too), the number to watch for a domain tokenizer.
"""

import argparse
import json
import sys
from itertools import islice
from pathlib import Path

from transformers import AutoTokenizer

from briskbert.trainers.corpus import load_corpus
from briskbert.trainers.tokenizer import ARABIC_NORMALIZERS, UNICODE_NORMALIZATIONS, extend_tokenizer, train_wordpiece


def parse_args(argv=None):
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
    return parser.parse_args(argv)


def pieces_per_word(tokenizer, texts: list[str]) -> float:
    words = pieces = 0
    for text in texts:
        for word, _ in tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(
                tokenizer.backend_tokenizer.normalizer.normalize_str(text)):
            words += 1
            pieces += len(tokenizer.backend_tokenizer.model.tokenize(word))
    return pieces / max(words, 1)


def main(argv=None):
    args = parse_args(argv)
    corpus = load_corpus(args.files or args.dataset, args.column, args.dataset_config)
    texts = [t for t in islice(corpus[args.column], args.max_texts) if t and t.strip()]
    if not texts:
        raise SystemExit(f"No text found in column {args.column!r} of {args.files or args.dataset}.")
    sample = texts[:2000]
    report = {"texts": len(texts)}
    if args.extend:
        base = AutoTokenizer.from_pretrained(args.extend)
        tokenizer, new_tokens = extend_tokenizer(base, texts, args.num_new_tokens)
        report.update(base=args.extend, base_vocab=len(base), new_tokens=len(new_tokens), first_new=new_tokens[:20],
                      base_pieces_per_word=round(pieces_per_word(base, sample), 3))
    else:
        tokenizer = train_wordpiece(texts, args.vocab_size, cased=args.cased, strip_accents=args.strip_accents,
                                    unicode_normalization=args.unicode_normalization,
                                    min_frequency=args.min_frequency,
                                    extra_normalizers=ARABIC_NORMALIZERS if args.arabic_normalization else ())
    report.update(vocab_size=len(tokenizer), pieces_per_word=round(pieces_per_word(tokenizer, sample), 3))
    if args.compare_with:
        other = AutoTokenizer.from_pretrained(args.compare_with)
        report.update(compared_with=args.compare_with,
                      compared_pieces_per_word=round(pieces_per_word(other, sample), 3))
    tokenizer.save_pretrained(args.output)
    (args.output / "tokenizer_report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"saved {type(tokenizer).__name__} to {args.output}")


if __name__ == "__main__":
    sys.exit(main())
