"""Rows -> model features, and model outputs -> what a task's metric scores, for every task kind.

- classification / regression: one text or a pair, truncated to `max_length` (longest segment first).
- multiple_choice: one (text, pair) per choice; the batch is [examples, choices, tokens].
- token_classification: words split by the data; each word's label on its first sub-token, -100 on the other
  sub-tokens and special tokens. Predictions go back to words (a word cut off by truncation counts as "O"),
  so every gold entity is scored.
- question_answering: the question, then the context in windows of `max_length` tokens overlapping by
  `doc_stride`; a window without the answer points at [CLS]. Each window keeps its token -> character
  offsets, so the best span over all windows (n-best start/end logits, at most `max_answer_length` tokens)
  maps back to the exact context text.

Features are plain dicts; `collate` pads them. Keys starting with "_" are bookkeeping, never model inputs.
"""

import numpy as np
import torch

from .registry import Task

MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids", "labels", "start_positions", "end_positions")


def build_features(task: Task, tokenizer, rows, max_length: int, doc_stride: int = 128) -> list[dict]:
    rows = list(rows)
    if task.kind in ("classification", "regression"):
        texts, pairs = zip(*(task.text_pair(row) for row in rows)) if rows else ((), ())
        pairs = None if all(p is None for p in pairs) else list(pairs)
        encoded = tokenizer(list(texts), pairs, truncation=True, max_length=max_length)
        return [{**_one(encoded, i), "labels": row[task.label_column], "_example": i} for i, row in enumerate(rows)]
    if task.kind == "multiple_choice":
        features = []
        for i, row in enumerate(rows):
            firsts, seconds = zip(*task.choices(row))
            encoded = tokenizer(list(firsts), list(seconds), truncation=True, max_length=max_length)
            features.append({**{k: list(v) for k, v in encoded.items()}, "labels": row[task.label_column],
                             "_example": i})
        return features
    if task.kind == "token_classification":
        return _token_features(task, tokenizer, rows, max_length)
    return _qa_features(tokenizer, rows, max_length, doc_stride)


def _one(encoded, i: int) -> dict:
    return {key: encoded[key][i] for key in encoded.keys() if key in MODEL_KEYS}


def _token_features(task, tokenizer, rows, max_length):
    encoded = tokenizer([row["tokens"] for row in rows], is_split_into_words=True, truncation=True,
                        max_length=max_length)
    features = []
    for i, row in enumerate(rows):
        word_ids = encoded.word_ids(i)
        labels, first_tokens, previous = [], {}, None
        for position, word in enumerate(word_ids):
            if word is None or word == previous:
                labels.append(-100)
            else:
                labels.append(row[task.label_column][word])
                first_tokens[word] = position
            previous = word
        features.append({**_one(encoded, i), "labels": labels, "_example": i,
                         "_first_tokens": first_tokens, "_num_words": len(row["tokens"])})
    return features


def _qa_features(tokenizer, rows, max_length, doc_stride):
    if tokenizer.padding_side != "right":
        raise ValueError("Extractive QA windows assume a right-padding tokenizer (question first, then context).")
    encoded = tokenizer([row["question"].lstrip() for row in rows], [row["context"] for row in rows],
                        truncation="only_second", max_length=max_length, stride=doc_stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True)
    features = []
    for window, example in enumerate(encoded["overflow_to_sample_mapping"]):
        row, sequence_ids = rows[example], encoded.sequence_ids(window)
        offsets = encoded["offset_mapping"][window]
        context_offsets = [tuple(o) if s == 1 else None for o, s in zip(offsets, sequence_ids)]
        feature = {**_one(encoded, window), "_example": example, "_offsets": context_offsets}
        answer_start = row["answers"]["answer_start"][0]
        answer_end = answer_start + len(row["answers"]["text"][0])
        start = end = 0  # [CLS]: the answer is not in this window
        inside = [i for i, o in enumerate(context_offsets) if o is not None]
        if inside and offsets[inside[0]][0] <= answer_start and offsets[inside[-1]][1] >= answer_end:
            start = next(i for i in inside if offsets[i][1] > answer_start)
            end = next(i for i in reversed(inside) if offsets[i][0] < answer_end)
        feature.update(start_positions=start, end_positions=end)
        features.append(feature)
    return features


def collate(features: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest sequence in the batch: ids with the pad token, masks with 0, token labels with -100."""
    batch = {}
    for key in MODEL_KEYS:
        if key not in features[0]:
            continue
        values = [f[key] for f in features]
        if not isinstance(values[0], list):  # one label per example
            batch[key] = torch.tensor(values)
            continue
        fill = pad_token_id if key == "input_ids" else -100 if key == "labels" else 0
        nested = isinstance(values[0][0], list)  # multiple choice: [choices][tokens]
        rows = [row for value in values for row in (value if nested else [value])]
        width = max(len(row) for row in rows)
        padded = torch.tensor([row + [fill] * (width - len(row)) for row in rows])
        batch[key] = padded.view(len(values), -1, width) if nested else padded
    return batch


class LengthGroupedBatches:
    """Batches of similar lengths, as transformers' Trainer does with `group_by_length`: each epoch shuffles the
    examples, sorts windows of 50 batches by length and shuffles the batches, so little compute goes on padding
    while the order stays random. Every example appears once per epoch."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, window: int = 50):
        self.lengths, self.batch_size, self.seed, self.window, self.epoch = lengths, batch_size, seed, window, 0

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        span = self.batch_size * self.window
        batches = []
        for start in range(0, len(order), span):
            chunk = sorted(order[start:start + span], key=lambda i: -self.lengths[i])
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        for index in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[index]


def feature_length(feature: dict) -> int:
    ids = feature["input_ids"]
    return sum(map(len, ids)) if ids and isinstance(ids[0], list) else len(ids)


# ---- outputs -> metric inputs


def metric_inputs(task: Task, rows, features: list[dict], outputs: list, n_best: int = 20,
                  max_answer_length: int = 30) -> tuple[list, list]:
    """(predictions, references) in the form the task's metric module takes. `outputs[i]` is the model's output
    for `features[i]`: class logits, a regression score, choice logits, per-token logits, or (start, end)."""
    rows = list(rows)
    if task.kind == "question_answering":
        return _qa_predictions(rows, features, outputs, n_best, max_answer_length)
    references = [row[task.label_column] for row in rows]
    if task.kind == "regression":
        return [float(np.asarray(o).reshape(-1)[0]) for o in outputs], references
    if task.kind == "token_classification":
        predictions = []
        for feature, logits in zip(features, outputs):
            tags = ["O"] * feature["_num_words"]
            for word, position in feature["_first_tokens"].items():
                tags[word] = task.labels[int(np.argmax(logits[position]))]
            predictions.append(tags)
        return predictions, [[task.labels[t] for t in tags] for tags in references]
    predictions = [int(np.argmax(o)) for o in outputs]
    if task.name == "multirc":  # scored per question: the metric needs each answer option's ids
        predictions = [{"idx": row["idx"], "prediction": p} for row, p in zip(rows, predictions)]
    return predictions, references


def _qa_predictions(rows, features, outputs, n_best, max_answer_length):
    best: dict[int, tuple[float, str]] = {}
    for feature, (start_logits, end_logits) in zip(features, outputs):
        offsets, context = feature["_offsets"], rows[feature["_example"]]["context"]
        length = min(len(offsets), len(start_logits))
        starts = np.argsort(start_logits[:length])[::-1][:n_best]
        ends = np.argsort(end_logits[:length])[::-1][:n_best]
        for s in starts:
            for e in ends:
                if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(start_logits[s] + end_logits[e])
                if feature["_example"] not in best or score > best[feature["_example"]][0]:
                    best[feature["_example"]] = (score, context[offsets[s][0]:offsets[e][1]])
    predictions = [{"id": str(row["id"]), "prediction_text": best.get(i, (0.0, ""))[1]} for i, row in enumerate(rows)]
    references = [{"id": str(row["id"]), "answers": {"text": list(row["answers"]["text"]),
                                                    "answer_start": list(row["answers"]["answer_start"])}}
                  for row in rows]
    return predictions, references
