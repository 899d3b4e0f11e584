"""Convert a BERT or MosaicBERT checkpoint into a BriskBERT folder with equal outputs.

    briskbert-convert --from bert --source path/to/bert-or-sentence-transformers-folder --output my-briskbert --check
    briskbert-convert --from mosaicbert --source mosaicml/mosaic-bert-base --tokenizer bert-base-uncased \\
        --output mosaic-briskbert

The output is a normal BriskBERT folder (safetensors weights, model code, auto_map, tokenizer; plus the
sentence-transformers modules when the source had them), loadable anywhere with
`AutoModel.from_pretrained(folder, trust_remote_code=True)`. The conversion refuses a checkpoint with weights it
does not know, weights it needs but cannot find, or another architecture; trainers/conversion/convert.py
says what is matched. --check compares outputs on real sentences right away.
"""

import argparse
import sys
from pathlib import Path

from briskbert.trainers.conversion.convert import SOURCES, check_against_source, convert, resolve_source


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source_kind", required=True, choices=SOURCES, help="checkpoint layout")
    parser.add_argument("--source", required=True, help="checkpoint folder or Hub id")
    parser.add_argument("--output", required=True, type=Path, help="new folder for the BriskBERT model")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder or Hub id when the source has none")
    parser.add_argument("--check", action="store_true", help="for a BERT source: run source and converted model on "
                                                             "real SST-2 sentences and print the max difference")
    args = parser.parse_args(argv)
    try:
        conversion = convert(args.source_kind, args.source, args.output, tokenizer=args.tokenizer)
    except ValueError as error:  # ConversionError, or a malformed sentence-transformers modules.json
        sys.exit(f"convert: {error}")
    config = conversion.model.config
    print(f"converted {args.source} ({args.source_kind}) -> {args.output}: {type(conversion.model).__name__}, "
          f"{config.num_hidden_layers} layers x {config.hidden_size}, positions {config.position_embedding_type}, "
          f"MLP {config.mlp_type}")
    for note in conversion.notes:
        print(f"  note: {note}")
    if args.check:
        if args.source_kind != "bert":
            sys.exit("--check needs the source's own code, which transformers has only for --from bert.")
        difference = check_against_source(resolve_source(args.source), args.output)
        print(f"max abs difference of last_hidden_state on 32 SST-2 sentences: {difference:.2e}")


if __name__ == "__main__":
    main()
