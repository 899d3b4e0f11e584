"""Sequence packing: many short documents per row, with the boundaries kept so none attends to another.

Each document becomes one or more segments `[CLS] tokens [SEP]` of at most `max_seq_length` tokens (a long
document is split; every piece gets its own [CLS]/[SEP]). Segments are placed into rows by first-fit
decreasing, which fills rows almost completely, and every token carries the index of its segment within the
row (`sequence_ids`). BriskBERT turns `sequence_ids` into cu_seqlens, so attention stays inside a segment;
the HF-BERT baseline gets the same boundaries as a block-diagonal mask with positions restarting per segment.
"""

import torch


def split_into_segments(token_ids: list[int], max_seq_length: int, cls_id: int, sep_id: int) -> list[list[int]]:
    body = max_seq_length - 2
    if body < 1:
        raise ValueError(f"max_seq_length must be at least 3 ([CLS] token [SEP]), got {max_seq_length}.")
    return [[cls_id, *token_ids[start:start + body], sep_id] for start in range(0, max(len(token_ids), 1), body)]


def pack_segments(segments: list[list[int]], max_seq_length: int) -> list[list[list[int]]]:
    """First-fit decreasing: returns rows, each a list of segments whose lengths sum to <= max_seq_length."""
    rows: list[list[list[int]]] = []
    room: list[int] = []
    for segment in sorted(segments, key=len, reverse=True):
        for row_index, free in enumerate(room):
            if len(segment) <= free:
                rows[row_index].append(segment)
                room[row_index] -= len(segment)
                break
        else:
            rows.append([segment])
            room.append(max_seq_length - len(segment))
    return rows


def pack_documents(batch: dict, max_seq_length: int, cls_id: int, sep_id: int) -> dict:
    """A batched `datasets.map` function: documents' `input_ids` (no special tokens) -> packed rows.

    Returns `input_ids` and `sequence_ids` (segment index per token), one entry per packed row; rows have
    at most `max_seq_length` tokens and are padded later, in the collator. Empty documents are dropped.
    """
    segments = [
        segment
        for token_ids in batch["input_ids"] if token_ids
        for segment in split_into_segments(token_ids, max_seq_length, cls_id, sep_id)
    ]
    rows = pack_segments(segments, max_seq_length)
    return {
        "input_ids": [[token for segment in row for token in segment] for row in rows],
        "sequence_ids": [[index for index, segment in enumerate(row) for _ in segment] for row in rows],
    }


def collate_rows(rows: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad packed rows to the longest in the batch: input_ids, attention_mask, sequence_ids (and row_id)."""
    length = max(len(row["input_ids"]) for row in rows)
    input_ids = torch.full((len(rows), length), pad_token_id, dtype=torch.long)
    sequence_ids = torch.zeros((len(rows), length), dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for index, row in enumerate(rows):
        size = len(row["input_ids"])
        input_ids[index, :size] = torch.tensor(row["input_ids"])
        sequence_ids[index, :size] = torch.tensor(row["sequence_ids"])
        attention_mask[index, :size] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "sequence_ids": sequence_ids}
    if "row_id" in rows[0]:
        batch["row_id"] = torch.tensor([row["row_id"] for row in rows])
    return batch


def block_diagonal_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same packed batch for a padded-attention model (HF BERT): a [batch, 1, seq, seq] boolean mask that
    lets a token see only its own segment, and positions that restart at 0 in every segment."""
    real = batch["attention_mask"].bool()
    segment = torch.where(real, batch["sequence_ids"], -1)
    same_segment = (segment[:, :, None] == segment[:, None, :]) & real[:, :, None] & real[:, None, :]
    # padding rows of the mask see themselves only, so softmax never runs over an empty row
    same_segment |= torch.eye(segment.shape[1], dtype=torch.bool)[None] & ~real[:, :, None]
    starts = torch.ones_like(real)
    starts[:, 1:] = segment[:, 1:] != segment[:, :-1]
    index = torch.arange(segment.shape[1]).expand_as(segment)
    segment_start = torch.cummax(torch.where(starts, index, 0), dim=1).values
    return {
        "input_ids": batch["input_ids"],
        "attention_mask": same_segment[:, None],
        "position_ids": index - segment_start,
    }


def packing_efficiency(lengths, max_seq_length: int) -> float:
    """Real tokens / slots of the packed rows (`lengths`: a list or an array of tokens per row)."""
    total = int(lengths.sum()) if hasattr(lengths, "sum") else sum(lengths)
    return total / (len(lengths) * max_seq_length) if len(lengths) else 0.0
