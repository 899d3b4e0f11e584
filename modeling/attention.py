"""Symmetric ALiBi attention over unpadded tokens, one class per backend.

`slopes` is None for a model without ALiBi (`position_embedding_type="absolute"`, converted BERT
checkpoints): every backend then attends with no positional bias, on the same unpadded layout.

Every backend is built once per forward from the batch's sequence boundaries (`UnpaddedBatch`), so
the work that depends only on the layout (length groups, masks, ALiBi biases) is shared by all layers,
then called by each layer with the fused projection `qkv` [total, 3, heads, head_dim] and returns
[total, heads, head_dim]. `ATTENTION_BACKENDS` is the one place that maps transformers'
`config._attn_implementation` to a backend:

- `eager`: plain PyTorch math on the caller's padded rows; the reference, and the only backend that can
  return attention probabilities (and the only one that builds batch x heads x seq x seq). Another backend
  asked for `output_attentions` answers that call with this one.
- `sdpa`: `F.scaled_dot_product_attention`, one call per run of equal-length sequences (the batch
  stores sequences sorted by length), so no padding is computed and each call gets a small
  [heads, L, L] ALiBi bias (the default; fast on CPU).
- `flex_attention`: torch FlexAttention on the packed tokens, ALiBi as a `score_mod` and the document
  boundaries as a block mask.
- `flash_attention_2`: flash-attn's varlen kernel with its native `alibi_slopes` (CUDA, optional extra).

Under `torch.export` the batch is a `PaddedBatch` (see `unpadding.py`) and every backend but eager becomes
`PaddedSdpaAttention`.
"""

import functools
import math

import torch
import torch.nn.functional as F

from .configuration_briskbert import round_up
from .unpadding import PaddedBatch, UnpaddedBatch


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """Per-head ALiBi slopes, the geometric sequence of Press et al. 2022 (incl. non-power-of-2 heads)."""

    def power_of_2_slopes(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    closest = 2 ** math.floor(math.log2(num_heads))
    slopes = power_of_2_slopes(closest)
    if closest < num_heads:  # interleave the next power of two's slopes, as the paper's reference code
        slopes += power_of_2_slopes(2 * closest)[0::2][: num_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(slopes: torch.Tensor, length: int) -> torch.Tensor:
    """[heads, length, length] symmetric bias -slope * |i - j| (MosaicBERT's bidirectional ALiBi)."""
    positions = torch.arange(length, device=slopes.device)
    distance = (positions[None, :] - positions[:, None]).abs()
    return -slopes[:, None, None] * distance


def padded_rows_bias(documents: torch.Tensor, positions: torch.Tensor, slopes: torch.Tensor | None) -> torch.Tensor:
    """[batch, heads or 1, seq, seq] additive bias for attention on padded rows, from `token_grid()`'s documents
    (0 at padding) and positions: ALiBi inside a document, -inf across documents and at padding keys. A padding
    query's row is all 0 (no -inf row, so no NaN); what it computes is thrown away."""
    same_document = (documents[:, :, None] == documents[:, None, :]) & (documents[:, None, :] != 0)
    bias = torch.zeros(same_document.shape, device=documents.device).masked_fill(~same_document, float("-inf"))
    bias = bias[:, None]
    if slopes is not None:
        distance = (positions[:, :, None] - positions[:, None, :]).abs()
        bias = bias - slopes[None, :, None, None] * distance[:, None]
    return bias.masked_fill((documents == 0)[:, None, :, None], 0.0)


class EagerAttention:
    """softmax(q k^T / sqrt(d) + ALiBi) v on the caller's padded rows: slow, obvious, exact. Its probabilities are
    what `output_attentions` returns: [batch, heads, seq, seq] in the caller's order, zero at padding and across the
    documents of a packed row, on the graph (their gradients can be kept)."""

    def __init__(self, batch: UnpaddedBatch, slopes: torch.Tensor | None):
        self.batch = batch
        documents, positions = batch.token_grid()
        self.bias = padded_rows_bias(documents, positions, slopes)
        self.padding_queries = (documents == 0)[:, None, :, None]

    def __call__(self, qkv, scale, dropout_p, output_attentions=False):
        q, k, v = self.batch.pad(qkv).permute(2, 0, 3, 1, 4)  # each [batch, heads, seq, head_dim], zeros at padding
        scores = torch.matmul(q, k.transpose(-1, -2)).float() * scale + self.bias
        probs = scores.softmax(dim=-1).masked_fill(self.padding_queries, 0.0).to(q.dtype)
        out = torch.matmul(F.dropout(probs, p=dropout_p), v)  # [batch, heads, seq, head_dim]
        return self.batch.unpad(out.transpose(1, 2)), (probs if output_attentions else None)


class PaddedSdpaAttention(EagerAttention):
    """The export path (`PaddedBatch`): SDPA on the padded rows with the same 4-D bias, a graph valid for every
    input. Every exporter built on `torch.export` supports SDPA (no flash-attn, no compiled kernel)."""

    def __call__(self, qkv, scale, dropout_p, output_attentions=False):
        q, k, v = self.batch.pad(qkv).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.bias.to(q.dtype), dropout_p=dropout_p, scale=scale)
        return self.batch.unpad(out.transpose(1, 2)), None


class SdpaAttention:
    """One SDPA call per run of equal-length sequences (the batch stores them sorted by length, so each length
    is one run): no padding, no gather, no batch x heads x seq x seq."""

    def __init__(self, batch: UnpaddedBatch, slopes: torch.Tensor | None):
        lengths, counts = torch.unique_consecutive(batch.seqlens, return_counts=True)
        self.runs = list(zip(counts.tolist(), lengths.tolist()))  # (sequences, length) per run
        self.alibi = slopes is not None
        # [1, heads, L, L]: a 4-D mask keeps SDPA on its fused CPU kernel; a 3-D one drops it to the math path
        self.biases = {}
        if self.alibi:
            self.biases = {(length, torch.float32): alibi_bias(slopes, length)[None] for _, length in self.runs}

    def __call__(self, qkv, scale, dropout_p, output_attentions=False):
        if qkv.device.type == "cpu" and qkv.dtype == torch.bfloat16 and qkv.requires_grad:
            # torch's CPU flash-attention backward is several times slower in bf16 than in fp32 on GLUE-length runs
            # (measured, torch 2.13); attention is a small share of the FLOPs, so train it in fp32 here
            with torch.autocast("cpu", enabled=False):
                return self._attend(qkv.float(), scale, dropout_p).to(qkv.dtype), None
        return self._attend(qkv, scale, dropout_p), None

    def _attend(self, qkv, scale, dropout_p):
        heads, head_dim = qkv.shape[2:]
        outputs = []
        for (count, length), chunk in zip(self.runs, qkv.split([c * l for c, l in self.runs])):
            q, k, v = chunk.view(count, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)  # [count, heads, L, d]
            bias = self.biases.get((length, q.dtype))
            if bias is None and self.alibi:  # cast once per forward, not once per layer
                bias = self.biases[length, q.dtype] = self.biases[length, torch.float32].to(q.dtype)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
            outputs.append(out.transpose(1, 2).reshape(count * length, heads, head_dim))
        return torch.cat(outputs) if len(outputs) > 1 else outputs[0]


class FlexAttention:
    """FlexAttention over all tokens at once: ALiBi `score_mod`, a document block mask skips cross-document blocks."""

    # CPU kernels are compiled per shape (see `flex_kernel`) and torch stops compiling after 8 shapes, so on
    # CPU the token count is rounded up to a multiple of this; the extra tokens form one masked-off document.
    CPU_LENGTH_MULTIPLE = 128

    def __init__(self, batch: UnpaddedBatch, slopes: torch.Tensor | None):
        from torch.nn.attention.flex_attention import create_block_mask

        self.total, self.slopes = batch.num_tokens, slopes
        document = batch.sequence_index()
        padded_total = self.total
        if document.device.type == "cpu":
            padded_total = round_up(self.total, self.CPU_LENGTH_MULTIPLE)
            document = F.pad(document, (0, padded_total - self.total), value=batch.num_sequences)

        def same_document(b, h, q_idx, kv_idx):
            return document[q_idx] == document[kv_idx]

        self.block_mask = create_block_mask(
            same_document, None, None, padded_total, padded_total, device=document.device
        )

    def alibi(self, score, b, h, q_idx, kv_idx):
        # q and kv share a document, so their distance inside it is their distance in the packed row
        return score - self.slopes[h] * (q_idx - kv_idx).abs()

    def __call__(self, qkv, scale, dropout_p, output_attentions=False):
        if qkv.device.type == "cpu" and qkv.requires_grad:
            raise NotImplementedError(
                "flex_attention has no backward on CPU in torch: run it under torch.no_grad() for inference, "
                "or use attn_implementation='sdpa' to train on CPU."
            )
        if dropout_p > 0:
            raise ValueError(
                "flex_attention has no attention dropout: set attention_probs_dropout_prob=0 or use "
                "attn_implementation='sdpa'."
            )
        padding = self.block_mask.shape[-1] - self.total
        if padding:
            qkv = F.pad(qkv, (0, 0, 0, 0, 0, 0, 0, padding))
        q, k, v = qkv.permute(1, 2, 0, 3).unsqueeze(1)  # each [1, heads, padded total, head_dim]
        score_mod = None if self.slopes is None else self.alibi
        out = flex_kernel(qkv.device.type)(q, k, v, score_mod=score_mod, block_mask=self.block_mask, scale=scale)
        return out[0, :, : self.total].transpose(0, 1), None


@functools.cache
def _compiled_flex_attention(dynamic: bool | None):
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=dynamic)


def flex_kernel(device_type: str):
    """FlexAttention is a kernel generator: uncompiled it materialises every score, so the kernel (only the
    kernel; compiling the model stays the launcher's choice) is compiled once per process. Inside an already
    compiled model it is traced as is. torch 2.13's CPU template cannot build dynamic-shape kernels
    ("cur_qSplitSize8 was not declared"), so on CPU each (bucketed) input shape gets its own static kernel."""
    from torch.nn.attention.flex_attention import flex_attention

    if torch.compiler.is_compiling():
        return flex_attention
    return _compiled_flex_attention(False if device_type == "cpu" else None)


class FlashAttention:
    """flash-attn's varlen kernel (CUDA, fp16/bf16) with its built-in symmetric ALiBi (none when slopes is None)."""

    def __init__(self, batch: UnpaddedBatch, slopes: torch.Tensor | None):
        try:
            from flash_attn import flash_attn_varlen_qkvpacked_func
        except ImportError as error:
            raise ImportError(
                "attn_implementation='flash_attention_2' needs the flash-attn package on a CUDA machine: "
                "pip install 'briskbert[flash]', or use attn_implementation='sdpa' or 'flex_attention'."
            ) from error
        self.kernel = flash_attn_varlen_qkvpacked_func
        self.cu_seqlens, self.max_seqlen, self.slopes = batch.cu_seqlens, batch.max_seqlen, slopes

    def __call__(self, qkv, scale, dropout_p, output_attentions=False):
        half = qkv.dtype if qkv.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16
        out = self.kernel(
            qkv.to(half), self.cu_seqlens, self.max_seqlen, dropout_p=dropout_p, softmax_scale=scale,
            causal=False, alibi_slopes=self.slopes,
        )
        return out.to(qkv.dtype), None


ATTENTION_BACKENDS = {
    "eager": EagerAttention,
    "sdpa": SdpaAttention,
    "flex_attention": FlexAttention,
    "flash_attention_2": FlashAttention,
}


def build_attention(
    implementation: str, batch: UnpaddedBatch, num_heads: int, device: torch.device, alibi: bool = True
):
    if implementation not in ATTENTION_BACKENDS:
        raise ValueError(
            f"BriskBERT has no attention backend {implementation!r}; choose one of {sorted(ATTENTION_BACKENDS)}."
        )
    slopes = alibi_slopes(num_heads).to(device) if alibi else None
    if isinstance(batch, PaddedBatch) and implementation != "eager":
        return PaddedSdpaAttention(batch, slopes)
    return ATTENTION_BACKENDS[implementation](batch, slopes)
