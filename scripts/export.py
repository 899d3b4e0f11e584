"""Export a saved BriskBERT for serving: ONNX (onnxruntime) or a `torch.export` program.

    briskbert-export --model my-briskbert --format onnx --output my-briskbert.onnx
    briskbert-export --model my-briskbert --format torch-export --output my-briskbert.pt2

The graph takes padded `input_ids`, `attention_mask`, `token_type_ids` (int64) of any batch size and sequence
length ([batch, choices, seq] for multiple choice) and returns the model's outputs (`last_hidden_state` +
`pooler_output` for the encoder, `logits` for most heads). It runs the padded rows with one additive attention mask
(ALiBi + padding), which exports, instead of the model's unpadding, which does not; outputs equal the PyTorch
model's, padded rows included. After writing, the exported graph and the PyTorch model run on real SST-2 sentences
of mixed length and the max difference is printed (briskbert/trainers/conversion/export.py).
"""

import argparse
from pathlib import Path

from briskbert.trainers.conversion.export import FORMATS, export_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="saved BriskBERT folder (with its tokenizer)")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--output", required=True, type=Path, help="file to write (.onnx or .pt2)")
    parser.add_argument("--max-length", type=int, default=128, help="truncation of the check sentences")
    args = parser.parse_args(argv)
    names, difference, shape = export_model(args.model, args.format, args.output, args.max_length)
    print(f"wrote {args.output} ({args.format} -> {', '.join(names)}); on {shape[0]} real SST-2 rows padded to "
          f"{shape[-1]} the exported graph and the PyTorch model differ by at most {difference:.2e}")


if __name__ == "__main__":
    main()
