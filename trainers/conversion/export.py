"""A BriskBERT model as one graph, for ONNX (`torch.onnx.export`, dynamo) and `torch.export`; what briskbert-export runs.

    names, difference, shape = export_model("my-briskbert", "onnx", "my-briskbert.onnx")

The model exports itself: under `torch.export` it runs on the padded rows (`modeling/unpadding.py`'s `PaddedBatch`,
SDPA with one 4-D ALiBi + padding bias) instead of removing padding, whose shapes depend on the data. So
`torch.export.export(model, (input_ids, attention_mask))` works for every head and every exporter built on it (this
module, torch.onnx's dynamo path, ExecuTorch). What is left here is naming the inputs and outputs and freeing the
batch and sequence dimensions.
"""

from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer

from ... import modeling
from ...modeling import HEADS
from ..resources import read_sentences

# what each head returns, in order (the ONNX output names)
OUTPUT_NAMES = {head.name: head.outputs for head in HEADS}
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
FORMATS = ("onnx", "torch-export")


class NamedOutputs(nn.Module):
    """`model` called with positional (input_ids, attention_mask, token_type_ids), returning the tensors named in
    `OUTPUT_NAMES` as a tuple: the flat signature an ONNX graph has."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.kind = type(model).__name__
        if self.kind not in OUTPUT_NAMES:
            raise ValueError(f"Cannot export {self.kind}: expected one of the BriskBERT classes {sorted(OUTPUT_NAMES)}.")
        self.model = model
        self.eval()  # the wrapper too, not only the model: exporters warn about (and trace) training mode

    @property
    def output_names(self) -> tuple[str, ...]:
        return OUTPUT_NAMES[self.kind]

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return tuple(out[name] for name in self.output_names)


def dynamic_shapes(kind: str) -> tuple[dict, ...]:
    """Batch and sequence length (and the number of choices) free in the exported graph, for each of INPUT_NAMES."""
    dims = {0: torch.export.Dim.DYNAMIC, 1: torch.export.Dim.DYNAMIC}
    if kind == "BriskBertForMultipleChoice":
        dims[2] = torch.export.Dim.DYNAMIC
    return tuple(dict(dims) for _ in INPUT_NAMES)


def export_program(model: nn.Module, example: dict) -> torch.export.ExportedProgram:
    wrapper = NamedOutputs(model)
    args = tuple(example[name] for name in INPUT_NAMES)
    return torch.export.export(wrapper, args, dynamic_shapes=dynamic_shapes(wrapper.kind))


def export_onnx(model: nn.Module, example: dict, path) -> tuple[str, ...]:
    """Write an ONNX file (dynamic batch and sequence length); returns its output names."""
    wrapper = NamedOutputs(model)
    args = tuple(example[name] for name in INPUT_NAMES)
    torch.onnx.export(
        wrapper, args, str(path), input_names=list(INPUT_NAMES), output_names=list(wrapper.output_names),
        dynamic_shapes=dynamic_shapes(wrapper.kind), dynamo=True, external_data=False,
    )
    return wrapper.output_names


# ---- a saved folder in, an exported file out, checked against PyTorch


def export_model(folder, export_format: str, output, max_length: int = 128) -> tuple[tuple[str, ...], float, tuple]:
    """Export the BriskBERT in `folder` and run the exported graph beside the PyTorch model on real SST-2 sentences
    of mixed length (another batch size and length than the traced example); returns (output names, their max abs
    difference, the checked input shape)."""
    if export_format not in FORMATS:
        raise SystemExit(f"export: --format must be one of {FORMATS}, got {export_format!r}.")
    folder, output = Path(folder), Path(output)
    model = load_briskbert(folder)
    tokenizer = load_tokenizer(folder)
    example = real_batch(tokenizer, model, 4, max_length)  # traced once; the shapes stay free
    check = real_batch(tokenizer, model, 16, max_length)
    output.parent.mkdir(parents=True, exist_ok=True)
    if export_format == "onnx":
        import onnxruntime

        names = export_onnx(model, example, output)
        session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        inputs = {key: value.numpy() for key, value in check.items()}
        exported = [torch.from_numpy(np.asarray(x)) for x in session.run(list(names), inputs)]
    else:
        torch.export.save(export_program(model, example), output)
        names = OUTPUT_NAMES[type(model).__name__]
        with torch.no_grad():
            exported = list(torch.export.load(output).module()(*check.values()))
    with torch.no_grad():
        out = model(**check)
    expected = [getattr(out, name) for name in names]
    difference = max((a - e).abs().max().item() for a, e in zip(exported, expected))
    return names, difference, tuple(check["input_ids"].shape)


def load_briskbert(folder: Path) -> nn.Module:
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    if config.model_type != "briskbert":
        raise SystemExit(f"export: {folder} holds a {config.model_type!r} model; convert it first with briskbert-convert.")
    architecture = (config.architectures or ["BriskBertModel"])[0]
    if architecture not in OUTPUT_NAMES:
        raise SystemExit(f"export: {folder} names architecture {architecture!r}, which is not a BriskBERT class "
                         f"({', '.join(OUTPUT_NAMES)}).")
    return getattr(modeling, architecture).from_pretrained(folder, attn_implementation="sdpa").eval()


def load_tokenizer(folder: Path):
    """The folder's tokenizer; a folder saved without one is refused with the fix, not transformers' guess that a
    tokenizer library is missing."""
    tokenizer_files = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
    if not any((folder / name).is_file() for name in tokenizer_files):
        raise SystemExit(f"export: {folder} has no tokenizer (none of {', '.join(tokenizer_files)}); the check runs the "
                         f"exported graph on real sentences. Save the tokenizer the model was trained with into it: "
                         f"AutoTokenizer.from_pretrained(<its tokenizer>).save_pretrained({str(folder)!r}).")
    return AutoTokenizer.from_pretrained(folder, trust_remote_code=True)


def real_batch(tokenizer, model, count: int, max_length: int, skip: int = 0) -> dict:
    """Real SST-2 sentences of mixed length (`count` of them after the first `skip`), padded; [batch, 2 choices, seq]
    for multiple choice."""
    sentences = read_sentences(skip + count)[skip:]
    batch = dict(tokenizer(sentences, padding=True, truncation=True, max_length=max_length, return_tensors="pt"))
    batch.setdefault("token_type_ids", torch.zeros_like(batch["input_ids"]))
    if type(model).__name__ == "BriskBertForMultipleChoice":
        batch = {k: v.view(count // 2, 2, -1) for k, v in batch.items()}
    return {name: batch[name] for name in INPUT_NAMES}
