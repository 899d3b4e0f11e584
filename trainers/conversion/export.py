"""A BriskBERT model as one static graph, for ONNX (`torch.onnx.export`) and `torch.export`; what briskbert-export runs.

    names, difference, shape = export_model("my-briskbert", "onnx", "my-briskbert.onnx")


The model itself removes padding first, which needs data-dependent shapes (`nonzero`, the sequence lengths as
Python ints to group them): exporters cannot trace that into a graph valid for every input. `PaddedBriskBert`
runs the same weights -- the model's own embedding, layer and head modules -- on the padded rows instead, and
gives attention one 4-D additive mask [batch, heads, seq, seq]: the ALiBi bias (none for absolute positions)
plus the lowest float on padding keys. For every real token it computes what the unpadded model computes (the
padding keys get exactly zero weight); the padding positions, which compute throwaway values, are then set to
what the model returns there (zeros; the dtype's lowest value for question-answering logits), so padded rows give
the model's outputs. Attention is `scaled_dot_product_attention`, which both exporters support (no flash-attn,
no compiled kernel). Learned positions count from each row's first real token, as the unpadded model's do.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoTokenizer

from briskbert import modeling
from briskbert.modeling import HEADS
from briskbert.modeling.attention import alibi_bias, alibi_slopes

from ..resources import read_sentences

# what each head returns, in order (the ONNX output names)
OUTPUT_NAMES = {head.name: head.outputs for head in HEADS}
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
FORMATS = ("onnx", "torch-export")


class PaddedAttention:
    """The attention seam of `BriskBertLayer` (qkv [tokens, 3, heads, head_dim] -> [tokens, heads, head_dim]) on
    `rows` padded rows of `length` tokens, with a precomputed additive mask."""

    def __init__(self, mask: torch.Tensor, rows, length):
        self.mask, self.rows, self.length = mask, rows, length

    def __call__(self, qkv, scale, dropout_p, output_attentions=False):
        heads, head_dim = qkv.shape[2:]
        q, k, v = qkv.view(self.rows, self.length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)  # [rows, heads, L, d]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask.to(q.dtype), scale=scale)
        return out.transpose(1, 2).reshape(self.rows * self.length, heads, head_dim), None


class PaddedBriskBert(nn.Module):
    """`model` (any BriskBERT class, eval mode) on padded inputs: forward(input_ids, attention_mask, token_type_ids)
    -> the tensors named in `OUTPUT_NAMES[type(model).__name__]`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.kind = type(model).__name__
        if self.kind not in OUTPUT_NAMES:
            raise ValueError(f"Cannot export {self.kind}: expected one of the BriskBERT classes {sorted(OUTPUT_NAMES)}.")
        self.model = model.eval()
        self.encoder = model if self.kind == "BriskBertModel" else model.model
        config = model.config
        self.absolute_positions = config.position_embedding_type == "absolute"
        self.register_buffer("slopes", None if self.absolute_positions else alibi_slopes(config.num_attention_heads))
        self.eval()

    @property
    def output_names(self) -> tuple[str, ...]:
        return OUTPUT_NAMES[self.kind]

    def encode(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        """[rows, seq] ids -> [rows, seq, hidden], real tokens as the unpadded model computes them."""
        rows, length = input_ids.shape
        real = attention_mask.bool()
        positions = None
        if self.absolute_positions:
            positions = (attention_mask.long().cumsum(1) - 1).clamp(min=0).reshape(-1)
        hidden = self.encoder.embeddings(
            input_ids=input_ids.reshape(-1), token_type_ids=token_type_ids.reshape(-1), positions=positions
        )  # [rows * seq, hidden]
        lowest = torch.finfo(hidden.dtype).min
        mask = torch.zeros(rows, 1, 1, length, dtype=torch.float32, device=input_ids.device)
        mask = mask.masked_fill(~real[:, None, None, :], lowest)  # [rows, 1, 1, seq]: padding keys get no weight
        if self.slopes is not None:
            mask = mask + alibi_bias(self.slopes, length)[None]  # [rows, heads, seq, seq]
        attention = PaddedAttention(mask, rows, length)
        for layer in self.encoder.layers:
            hidden, _ = layer(hidden, attention)
        return hidden.view(rows, length, -1)

    def forward(self, input_ids, attention_mask, token_type_ids):
        if self.kind == "BriskBertForMultipleChoice":  # [batch, choices, seq] -> [batch * choices, seq]
            choices = input_ids.shape[1]
            input_ids, attention_mask, token_type_ids = (x.flatten(0, 1) for x in (input_ids, attention_mask, token_type_ids))
        real = attention_mask.bool()[..., None]  # [rows, seq, 1]
        hidden = self.encode(input_ids, attention_mask, token_type_ids)
        model = self.model
        if self.kind == "BriskBertModel":
            hidden = hidden.masked_fill(~real, 0.0)
            return hidden, hidden.sum(1) / real.sum(1).to(hidden.dtype)
        if self.kind == "BriskBertForMaskedLM":
            return model.decoder(model.head(hidden)).masked_fill(~real, 0.0)
        if self.kind == "BriskBertForTokenClassification":
            return model.classifier(hidden).masked_fill(~real, 0.0)
        if self.kind == "BriskBertForQuestionAnswering":
            logits = model.qa_outputs(hidden)
            logits = logits.masked_fill(~real, torch.finfo(logits.dtype).min)
            return logits[..., 0], logits[..., 1]
        logits = model.classifier(model.pooler(self.pool(hidden, real)))  # sequence classification, multiple choice
        return logits.view(-1, choices) if self.kind == "BriskBertForMultipleChoice" else logits

    def pool(self, hidden, real):
        if self.model.config.classifier_pooling == "mean":
            return hidden.masked_fill(~real, 0.0).sum(1) / real.sum(1).to(hidden.dtype)
        first = real[..., 0].int().argmax(1)  # each row's first real token ([CLS]), also when left-padded
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]


def dynamic_shapes(kind: str) -> dict:
    """Batch and sequence length (and the number of choices) free in the exported graph."""
    dims = {0: torch.export.Dim.DYNAMIC, 1: torch.export.Dim.DYNAMIC}
    if kind == "BriskBertForMultipleChoice":
        dims[2] = torch.export.Dim.DYNAMIC
    return {name: dict(dims) for name in INPUT_NAMES}


def export_program(model: nn.Module, example: dict) -> torch.export.ExportedProgram:
    wrapper = PaddedBriskBert(model)
    args = tuple(example[name] for name in INPUT_NAMES)
    return torch.export.export(wrapper, args, dynamic_shapes=tuple(dynamic_shapes(wrapper.kind).values()))


def export_onnx(model: nn.Module, example: dict, path) -> tuple[str, ...]:
    """Write an ONNX file (dynamic batch and sequence length); returns its output names."""
    wrapper = PaddedBriskBert(model)
    args = tuple(example[name] for name in INPUT_NAMES)
    torch.onnx.export(
        wrapper, args, str(path), input_names=list(INPUT_NAMES), output_names=list(wrapper.output_names),
        dynamic_shapes=tuple(dynamic_shapes(wrapper.kind).values()), dynamo=True, external_data=False,
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


def real_batch(tokenizer, model, count: int, max_length: int) -> dict:
    """Real SST-2 sentences of mixed length, padded; [batch, 2 choices, seq] for multiple choice."""
    batch = dict(tokenizer(read_sentences(count), padding=True, truncation=True, max_length=max_length, return_tensors="pt"))
    batch.setdefault("token_type_ids", torch.zeros_like(batch["input_ids"]))
    if type(model).__name__ == "BriskBertForMultipleChoice":
        batch = {k: v.view(count // 2, 2, -1) for k, v in batch.items()}
    return {name: batch[name] for name in INPUT_NAMES}
