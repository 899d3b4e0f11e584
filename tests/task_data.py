"""Small task folders for the fine-tuning tests, laid out like ../shared/data (`glue/sst2/train.jsonl`, ...).

Rows come from the repo's real samples in data/ where the task has one (SST-2, CoLA, MRPC, STS-B, RTE, COPA,
CoNLL-2003, SQuAD: split into train and validation here), else are synthetic rows of the task's exact schema
(the same column names, types and label encoding as the Hub dataset), built from real SST-2 sentences: MNLI,
QQP, QNLI and BoolQ have no training data offline at all.
"""

import json
import shutil
from pathlib import Path

from briskbert.trainers.tasks.registry import TASKS, Task

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
SHARED = REPO.parent / "shared" / "data"
REAL = {"sst2", "cola", "mrpc", "stsb", "rte", "copa", "conll2003", "squad"}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def sentences() -> list[str]:
    texts = [row["sentence"].strip() for row in read_jsonl(DATA / "glue/sst2/validation.jsonl")[:300]]
    return [text for text in texts if len(text.split()) >= 4]


def synthetic_row(task: Task, i: int, pool: list[str]) -> dict:
    first, second = pool[i % len(pool)], pool[(i * 7 + 3) % len(pool)]
    label = i % max(task.num_labels, 1)
    if task.kind == "token_classification":
        tokens = first.split()
        return {"id": str(i), "tokens": tokens, task.label_column: [(i + j) % len(task.labels) for j in range(len(tokens))]}
    special = {
        "wic": lambda: {"word": first.split()[0], "sentence1": first, "sentence2": f"{first.split()[0]} {second}",
                        "start1": 0, "end1": len(first.split()[0]), "start2": 0, "end2": len(first.split()[0])},
        "wsc": lambda: {"text": first, "span1_index": 0, "span1_text": first.split()[0], "span2_index": 2,
                        "span2_text": first.split()[2]},
        "multirc": lambda: {"paragraph": first, "question": second, "answer": pool[(i + 11) % len(pool)],
                            "idx": {"paragraph": i // 6, "question": i // 3, "answer": i}},
        "pubmedqa": lambda: {"pubid": i, "question": second,
                             "context": {"contexts": [first, second], "labels": ["A", "B"], "meshes": []},
                             "long_answer": first},
    }
    row = special[task.name]() if task.name in special else {
        column: (first if n == 0 else second) for n, column in enumerate(task.columns)}
    row.setdefault("idx", i)
    # tasks stored with label names keep them (GermEval 2018, PubMedQA), the others store class ids
    string_labels = task.name in ("pubmedqa", "germeval2018", "germeval2018_fine")
    row[task.label_column] = task.labels[label] if string_labels else label
    return row


def task_rows(task: Task, n_train: int, n_validation: int) -> tuple[list[dict], list[dict]]:
    if task.name in REAL:
        rows = read_jsonl(DATA / task.local_dir / "validation.jsonl")
        return rows[:n_train], rows[n_train:n_train + n_validation]
    pool = sentences()
    rows = [synthetic_row(task, i, pool) for i in range(n_train + n_validation)]
    return rows[:n_train], rows[n_train:]


def write_task(root: Path, name: str, n_train: int = 24, n_validation: int = 12) -> Path:
    """Write `name`'s folder under `root` (every scored split, e.g. MNLI's matched and mismatched); returns root."""
    task = TASKS[name]
    train, validation = task_rows(task, n_train, n_validation)
    folder = root / task.local_dir
    write_jsonl(folder / "train.jsonl", train)
    for split in task.splits:
        write_jsonl(folder / f"{split.file}.jsonl", validation)
    labels_file = DATA / task.local_dir / "labels.json"
    if labels_file.is_file():
        shutil.copy(labels_file, folder / "labels.json")
    return root
