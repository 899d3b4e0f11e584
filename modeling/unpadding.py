"""Removing padding once, before the embeddings, and putting it back only where a caller needs it.

A batch reaches the model in one of three layouts, and `unpad_batch` turns each into the flat real
tokens plus `cu_seqlens`, the cumulative sequence lengths that every attention backend works from:
- padded rows: `input_ids` [batch, seq] with `attention_mask` (1 = real token); one sequence per row;
- packed rows: the same plus `sequence_ids` [batch, seq]; each run of equal ids in a row is one
  document, and no token attends across documents;
- flat packed: `input_ids` [total] or [1, total] with `cu_seqlens` [documents + 1] (flash-attn's
  varlen convention), nothing to remove.

Under `torch.export` (and exporters built on it) the model takes `PaddedBatch` instead: the same interface over
every token of the padded rows, because finding the real tokens needs shapes that depend on the data.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class UnpaddedBatch:
    """The real tokens of a batch, stored sequence after sequence with the sequences sorted by length.

    Sorting puts sequences of equal length next to each other, so the sdpa backend attends to each run
    of them with one call and no gather; everything else is indifferent to the order. `pad` and
    `restore_sequence_order` give results back in the caller's order.
    """

    indices: torch.Tensor | None  # [total] each stored token's position in the flattened input; None: same
    shape: tuple[int, int]  # the caller's (batch, seq)
    cu_seqlens: torch.Tensor  # int32 [num_sequences + 1], stored order
    max_seqlen: int
    sequence_order: torch.Tensor | None = None  # [num_sequences] caller's index of each stored sequence

    @property
    def num_sequences(self) -> int:
        return self.cu_seqlens.numel() - 1

    @property
    def num_tokens(self) -> int:
        return self.shape[0] * self.shape[1] if self.indices is None else self.indices.numel()

    @property
    def seqlens(self) -> torch.Tensor:
        return self.cu_seqlens.diff()

    def sequence_index(self) -> torch.Tensor:
        """[total] index (in stored order) of the sequence each stored token belongs to."""
        return torch.repeat_interleave(
            torch.arange(self.num_sequences, device=self.cu_seqlens.device),
            self.seqlens.long(),
            output_size=self.num_tokens,
        )

    def positions_in_sequence(self) -> torch.Tensor:
        """[total] each stored token's position inside its own sequence: 0 at its first token, restarting in
        every sequence and in every document of a packed row (what learned position embeddings index)."""
        starts = self.cu_seqlens[:-1].long()[self.sequence_index()]
        return torch.arange(self.num_tokens, device=self.cu_seqlens.device) - starts

    def input_positions(self) -> torch.Tensor:
        """[total] each stored token's position in the flattened input."""
        if self.indices is not None:
            return self.indices
        return torch.arange(self.num_tokens, device=self.cu_seqlens.device)

    def unpad(self, padded: torch.Tensor) -> torch.Tensor:
        """[batch, seq, ...] -> [total, ...]"""
        flat = padded.reshape(self.shape[0] * self.shape[1], *padded.shape[2:])
        return flat if self.indices is None else flat.index_select(0, self.indices)

    def pad(self, tokens: torch.Tensor, fill_value: float = 0.0) -> torch.Tensor:
        """[total, ...] -> [batch, seq, ...], `fill_value` at padding."""
        batch, seq = self.shape
        if self.indices is not None:
            full = tokens.new_full((batch * seq, *tokens.shape[1:]), fill_value)
            tokens = full.index_copy(0, self.indices, tokens)
        return tokens.reshape(batch, seq, *tokens.shape[1:])

    def restore_sequence_order(self, per_sequence: torch.Tensor) -> torch.Tensor:
        """[num_sequences, ...] in stored order -> the caller's order."""
        if self.sequence_order is None:
            return per_sequence
        return torch.empty_like(per_sequence).index_copy(0, self.sequence_order, per_sequence)

    def first_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """[total, hidden] -> [sequences, hidden]: each sequence's first ([CLS]) token, in the caller's order."""
        return self.restore_sequence_order(tokens[self.cu_seqlens[:-1].long()])

    def mean_pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """[total, hidden] -> [sequences, hidden]: each sequence's mean over its real tokens, in the caller's order."""
        sums = tokens.new_zeros(self.num_sequences, tokens.shape[-1]).index_add(0, self.sequence_index(), tokens)
        return self.restore_sequence_order(sums / self.seqlens.unsqueeze(-1).to(sums.dtype))

    def token_grid(self) -> tuple[torch.Tensor, torch.Tensor]:
        """On the caller's [batch, seq] grid: each token's document (1, 2, ...; 0 at padding) and its position inside
        it; what attention on padded rows needs to keep documents apart and measure ALiBi distances."""
        batch, seq = self.shape
        documents = self.pad(self.sequence_index() + 1).long()
        positions = self.pad(self.positions_in_sequence())
        return documents.view(batch, seq), positions.view(batch, seq)


@dataclass
class PaddedBatch:
    """The `UnpaddedBatch` interface over every token of right- or left-padded rows, one sequence per row: the
    model's path under `torch.export`, whose graph must hold for every input. Padding tokens are computed and then
    dropped (`pad` puts `fill_value` there), so real tokens get what the unpadded path gives them."""

    mask: torch.Tensor  # [batch, seq] bool, True at real tokens

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape)

    @property
    def num_sequences(self) -> int:
        return self.mask.shape[0]

    @property
    def num_tokens(self) -> int:
        return self.mask.numel()

    @property
    def max_seqlen(self) -> int:
        return self.mask.shape[1]

    def positions_in_sequence(self) -> torch.Tensor:
        """[batch * seq] each token's position counted from its row's first real token, as the unpadded path does."""
        return (self.mask.long().cumsum(1) - 1).clamp(min=0).flatten()

    def input_positions(self) -> torch.Tensor:
        return torch.arange(self.num_tokens, device=self.mask.device)

    def unpad(self, padded: torch.Tensor) -> torch.Tensor:
        return padded.reshape(self.num_tokens, *padded.shape[2:])

    def pad(self, tokens: torch.Tensor, fill_value: float = 0.0) -> torch.Tensor:
        padded = tokens.reshape(*self.shape, *tokens.shape[1:])
        real = self.mask.view(*self.shape, *([1] * (tokens.dim() - 1)))
        return padded.masked_fill(~real, fill_value)

    def restore_sequence_order(self, per_sequence: torch.Tensor) -> torch.Tensor:
        return per_sequence

    def first_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        first = self.mask.int().argmax(1)  # each row's first real token, also when left-padded
        return tokens.view(*self.shape, -1)[torch.arange(self.num_sequences, device=tokens.device), first]

    def mean_pool(self, tokens: torch.Tensor) -> torch.Tensor:
        padded = self.pad(tokens)
        return padded.sum(1) / self.mask.sum(1, keepdim=True).to(padded.dtype)

    def token_grid(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mask.long(), self.positions_in_sequence().view(self.shape)


def padded_batch(shape, device, attention_mask=None, sequence_ids=None, cu_seqlens=None) -> PaddedBatch:
    """The export path's batch for an input of `shape` [batch, seq]."""
    if sequence_ids is not None or cu_seqlens is not None:
        raise ValueError(
            "An exported BriskBERT takes padded rows (input_ids with attention_mask), one sequence per row: export "
            "without sequence_ids and cu_seqlens (packed rows run on the unpadded model, not in an exported graph)."
        )
    if len(shape) != 2:
        raise ValueError(f"input_ids must be [batch, seq] (got shape {tuple(shape)}).")
    if attention_mask is None:
        return PaddedBatch(torch.ones(shape, dtype=torch.bool, device=device))
    return PaddedBatch(attention_mask.bool())


def _sorted_by_length(positions, cu_seqlens, shape) -> UnpaddedBatch:
    """Store the sequences (real tokens at `positions`, split by `cu_seqlens`, caller's order) shortest first."""
    lengths = cu_seqlens.diff()
    max_seqlen = int(lengths.max())
    if bool((lengths[1:] >= lengths[:-1]).all()):  # already sorted, e.g. one sequence or equal lengths
        return UnpaddedBatch(positions, shape, cu_seqlens, max_seqlen)
    order = torch.argsort(lengths, stable=True)
    sorted_lengths = lengths[order]
    sorted_cu_seqlens = F.pad(sorted_lengths.cumsum(0, dtype=torch.int32), (1, 0))
    total = int(cu_seqlens[-1])
    # stored token i of stored sequence j comes from caller token cu_seqlens[order[j]] + (i - sorted_cu_seqlens[j])
    shift = torch.repeat_interleave(cu_seqlens[:-1][order] - sorted_cu_seqlens[:-1], sorted_lengths, output_size=total)
    source = torch.arange(total, device=cu_seqlens.device) + shift
    positions = source if positions is None else positions[source]
    return UnpaddedBatch(positions, shape, sorted_cu_seqlens, max_seqlen, order)


def unpad_batch(
    shape: tuple[int, ...],
    device: torch.device,
    attention_mask: torch.Tensor | None = None,
    sequence_ids: torch.Tensor | None = None,
    cu_seqlens: torch.Tensor | None = None,
) -> UnpaddedBatch:
    """Find the real tokens and sequence boundaries of an input of `shape` (ids without the hidden dim)."""
    if cu_seqlens is not None:
        return _from_cu_seqlens(shape, attention_mask, sequence_ids, cu_seqlens)
    if len(shape) != 2:
        raise ValueError(
            f"input_ids must be [batch, seq] (got shape {tuple(shape)}); a flat packed input also needs "
            f"cu_seqlens."
        )
    batch, seq = shape
    if batch == 0 or seq == 0:
        raise ValueError(f"The batch is empty (input shape {tuple(shape)}): pass at least one token.")
    if attention_mask is None:
        mask = torch.ones(batch, seq, dtype=torch.bool, device=device)
    elif tuple(attention_mask.shape) != (batch, seq):
        raise ValueError(
            f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids has shape {(batch, seq)}: "
            f"pass the mask the tokenizer returned with these ids (padding=True, return_tensors='pt')."
        )
    else:
        mask = attention_mask.bool()

    lengths = mask.sum(dim=1, dtype=torch.int32)
    empty_rows = (lengths == 0).nonzero().flatten().tolist()
    if empty_rows:
        raise ValueError(
            f"Row(s) {empty_rows} of the batch hold no real token (attention_mask is all 0): drop empty rows "
            f"before calling the model."
        )
    all_real = bool(mask.all())
    indices = None if all_real else mask.flatten().nonzero().flatten()

    if sequence_ids is None:
        cu_seqlens = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
        return _sorted_by_length(indices, cu_seqlens, (batch, seq))

    if tuple(sequence_ids.shape) != (batch, seq):
        raise ValueError(
            f"sequence_ids has shape {tuple(sequence_ids.shape)} but input_ids has shape {(batch, seq)}: give "
            f"one document id per token."
        )
    token_ids = sequence_ids.flatten() if indices is None else sequence_ids.flatten()[indices]
    positions = torch.arange(batch * seq, device=device) if indices is None else indices
    rows = torch.div(positions, seq, rounding_mode="floor")
    starts = torch.ones_like(token_ids, dtype=torch.bool)
    starts[1:] = (token_ids[1:] != token_ids[:-1]) | (rows[1:] != rows[:-1])
    total = torch.tensor([token_ids.numel()], device=device)
    cu_seqlens = torch.cat([starts.nonzero().flatten(), total]).to(torch.int32)
    return _sorted_by_length(indices, cu_seqlens, (batch, seq))


def _from_cu_seqlens(shape, attention_mask, sequence_ids, cu_seqlens) -> UnpaddedBatch:
    if attention_mask is not None or sequence_ids is not None:
        raise ValueError(
            "cu_seqlens describes a flat packed input that has no padding: pass it without attention_mask "
            "and sequence_ids (or pass those two without cu_seqlens)."
        )
    if len(shape) > 2 or (len(shape) == 2 and shape[0] != 1):
        raise ValueError(
            f"With cu_seqlens the input must be flat, [total] or [1, total] (got shape {tuple(shape)})."
        )
    total = shape[-1]
    if total == 0:
        raise ValueError("The batch is empty (no tokens): pass at least one token.")
    cu_seqlens = cu_seqlens.to(torch.int32)
    well_formed = (
        cu_seqlens.ndim == 1
        and cu_seqlens.numel() >= 2
        and int(cu_seqlens[0]) == 0
        and int(cu_seqlens[-1]) == total
        and bool((cu_seqlens.diff() > 0).all())
    )
    if not well_formed:
        raise ValueError(
            f"cu_seqlens must rise strictly from 0 to the number of tokens ({total}), e.g. [0, 5, 12] for "
            f"documents of 5 and 7 tokens; got {cu_seqlens.tolist()}."
        )
    return _sorted_by_length(None, cu_seqlens, (1, total))
