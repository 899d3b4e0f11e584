"""A BriskBERT model as one static graph, for ONNX (`torch.onnx.export`) and `torch.export` (used by scripts/export.py).

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

import torch
import torch.nn.functional as F
from torch import nn

from briskbert.modeling.attention import alibi_bias, alibi_slopes

# what each head returns, in order (the ONNX output names)
OUTPUT_NAMES = {
    "BriskBertModel": ("last_hidden_state", "pooler_output"),
    "BriskBertForMaskedLM": ("logits",),
    "BriskBertForSequenceClassification": ("logits",),
    "BriskBertForTokenClassification": ("logits",),
    "BriskBertForQuestionAnswering": ("start_logits", "end_logits"),
    "BriskBertForMultipleChoice": ("logits",),
}
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


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
