"""Export a saved BriskBERT for serving: ONNX (onnxruntime) or a `torch.export` program.

    python scripts/export.py --model my-briskbert --format onnx --output my-briskbert.onnx
    python scripts/export.py --model my-briskbert --format torch-export --output my-briskbert.pt2

The graph takes padded `input_ids`, `attention_mask`, `token_type_ids` (int64) of any batch size and sequence
length ([batch, choices, seq] for multiple choice) and returns the model's outputs (see
trainers/export.py: `last_hidden_state` + `pooler_output` for the encoder, `logits` for most heads). It runs the
padded rows with one additive attention mask (ALiBi + padding), which exports, instead of the model's unpadding,
which does not; outputs equal the PyTorch model's, padded rows included. After writing, the script runs the
exported graph and the PyTorch model on real SST-2 sentences of mixed length and prints the max difference.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer

import briskbert
from briskbert.trainers.export import INPUT_NAMES, OUTPUT_NAMES, export_onnx, export_program

REPO = Path(__file__).resolve().parent.parent
FORMATS = ("onnx", "torch-export")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="saved BriskBERT folder (with its tokenizer)")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--output", required=True, type=Path, help="file to write (.onnx or .pt2)")
    parser.add_argument("--max-length", type=int, default=128, help="truncation of the check sentences")
    return parser.parse_args(argv)


def load_model(folder: Path):
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    if config.model_type != "briskbert":
        sys.exit(f"export.py: {folder} holds a {config.model_type!r} model; convert it first with scripts/convert.py.")
    architecture = (config.architectures or ["BriskBertModel"])[0]
    model_class = getattr(briskbert, architecture, None)
    if model_class is None:
        sys.exit(f"export.py: {folder} names architecture {architecture!r}, which is not a BriskBERT class.")
    return model_class.from_pretrained(folder, attn_implementation="sdpa").eval()


def real_batch(tokenizer, model, count: int, max_length: int) -> dict:
    """Real SST-2 sentences of mixed length, padded; [batch, 2 choices, seq] for multiple choice."""
    with open(REPO / "data" / "glue" / "sst2" / "validation.jsonl") as handle:
        sentences = [json.loads(line)["sentence"] for _, line in zip(range(count), handle)]
    batch = dict(tokenizer(sentences, padding=True, truncation=True, max_length=max_length, return_tensors="pt"))
    batch.setdefault("token_type_ids", torch.zeros_like(batch["input_ids"]))
    if type(model).__name__ == "BriskBertForMultipleChoice":
        batch = {k: v.view(count // 2, 2, -1) for k, v in batch.items()}
    return {name: batch[name] for name in INPUT_NAMES}


def pytorch_outputs(model, batch, names) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model(**batch)
    return [getattr(out, name) for name in names]


def main(argv=None):
    args = parse_args(argv)
    model = load_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    example = real_batch(tokenizer, model, 4, args.max_length)  # traced once; the shapes stay free
    check = real_batch(tokenizer, model, 16, args.max_length)  # another batch size and length
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "onnx":
        import onnxruntime

        names = export_onnx(model, example, args.output)
        session = onnxruntime.InferenceSession(str(args.output), providers=["CPUExecutionProvider"])
        exported = [torch.from_numpy(np.asarray(x)) for x in session.run(list(names), {k: v.numpy() for k, v in check.items()})]
    else:
        program = export_program(model, example)
        torch.export.save(program, args.output)
        names = OUTPUT_NAMES[type(model).__name__]
        with torch.no_grad():
            exported = list(torch.export.load(args.output).module()(*check.values()))
    expected = pytorch_outputs(model, check, names)
    difference = max((a - e).abs().max().item() for a, e in zip(exported, expected))
    shape = tuple(check["input_ids"].shape)
    print(
        f"wrote {args.output} ({args.format}, {type(model).__name__} -> {', '.join(names)}); on {shape[0]} real "
        f"SST-2 rows padded to {shape[-1]} the exported graph and the PyTorch model differ by at most {difference:.2e}"
    )


if __name__ == "__main__":
    main()
