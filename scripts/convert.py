"""Convert a BERT or MosaicBERT checkpoint into a BriskBERT folder with equal outputs.

    python scripts/convert.py --from bert --source path/to/bert-or-sentence-transformers-folder --output my-briskbert
    python scripts/convert.py --from mosaicbert --source mosaicml/mosaic-bert-base --tokenizer bert-base-uncased \\
        --output mosaic-briskbert

The output is a normal BriskBERT folder (safetensors weights, model code, auto_map, tokenizer; plus the
sentence-transformers modules when the source had them), loadable anywhere with
`AutoModel.from_pretrained(folder, trust_remote_code=True)`. The conversion refuses a checkpoint with weights it
does not know, weights it needs but cannot find, or another architecture; see trainers/convert.py for what is
matched, and --check to compare outputs on real sentences right away.
"""

import argparse
import json
import sys
from pathlib import Path

from briskbert.trainers.convert import SOURCES, convert, resolve_source

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source_kind", required=True, choices=SOURCES, help="checkpoint layout")
    parser.add_argument("--source", required=True, help="checkpoint folder or Hub id")
    parser.add_argument("--output", required=True, type=Path, help="new folder for the BriskBERT model")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder or Hub id when the source has none")
    parser.add_argument(
        "--check", action="store_true",
        help="for a BERT source: run source and converted model on real SST-2 sentences and print the max difference",
    )
    return parser.parse_args(argv)


def check_against_source(source: Path, output: Path) -> float:  # source: the folder convert() read
    """Max abs difference of the last hidden states of the transformers BERT and the converted model (fp32)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from briskbert.trainers.sentence_embeddings import find_sentence_transformers_model

    model_folder, _ = find_sentence_transformers_model(source)
    sentences = [json.loads(line)["sentence"] for _, line in zip(range(32), open(REPO / "data/glue/sst2/validation.jsonl"))]
    tokenizer = AutoTokenizer.from_pretrained(output)
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt")
    original = AutoModel.from_pretrained(model_folder, attn_implementation="eager").eval()
    converted = AutoModel.from_pretrained(output, trust_remote_code=True).eval()
    with torch.no_grad():
        expected = original(**batch).last_hidden_state
        actual = converted(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    return (expected[real] - actual[real]).abs().max().item()


def main(argv=None):
    args = parse_args(argv)
    try:
        conversion = convert(args.source_kind, args.source, args.output, tokenizer=args.tokenizer)
    except ValueError as error:  # ConversionError, or a malformed sentence-transformers modules.json
        sys.exit(f"convert.py: {error}")
    config = conversion.model.config
    print(
        f"converted {args.source} ({args.source_kind}) -> {args.output}: {type(conversion.model).__name__}, "
        f"{config.num_hidden_layers} layers x {config.hidden_size}, positions {config.position_embedding_type}, "
        f"MLP {config.mlp_type}"
    )
    for note in conversion.notes:
        print(f"  note: {note}")
    if args.check:
        if args.source_kind != "bert":
            sys.exit("--check needs the source's own code, which transformers has only for --from bert.")
        print(f"max abs difference of last_hidden_state on 32 SST-2 sentences: {check_against_source(resolve_source(args.source), args.output):.2e}")


if __name__ == "__main__":
    main()
