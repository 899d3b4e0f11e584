"""The downstream task registry: what each task's data looks like, where it comes from, how it is shown, licensed,
fine-tuned and scored. One task is one YAML file, hub_configs/tasks/<task>.yaml, shipped with the package.

    task = get_task("mrpc")
    data = load_task_data(task, data_dir="data")    # or data_dir=None: the Hub dataset
    data["train"], data["validation"]                # checked rows, labels as class ids
    task.finetune                                    # the task's fine-tuning defaults (FinetuneConfig fields)

A task names its Hub dataset (`nyu-mll/glue`, `aps/super_glue`, ...) and the same schema in a local folder laid
out like the project's `data/` (`<data_dir>/glue/mrpc/train.jsonl`, `validation.jsonl`, `.jsonl.gz` too). Rows are
checked on load: a missing column, a label outside the label set or an unknown task stops the run with a message
that names the fix. Adding a task is one YAML file (plus, when its input is not plain text columns, a formatter in
`INPUT_FORMATS`) and its test.

Task kinds: `classification` (one text or a pair), `regression` (STS-B), `multiple_choice` (COPA),
`token_classification` (NER, IOB2 tags) and `question_answering` (SQuAD v1.1, extractive).
"""

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import yaml

from ...metrics import MODULES as METRIC_MODULES
from ...modeling.heads import Head, head_named
from ..data.licenses import DataLicense
from ..resources import RECIPES, package_folder

# each task kind and the model class (briskbert.modeling.HEADS) that fine-tunes it
KIND_HEADS = {
    "classification": "BriskBertForSequenceClassification",
    "regression": "BriskBertForSequenceClassification",
    "multiple_choice": "BriskBertForMultipleChoice",
    "token_classification": "BriskBertForTokenClassification",
    "question_answering": "BriskBertForQuestionAnswering",
}
KINDS = tuple(KIND_HEADS)
SUITE_ORDER = ("glue", "superglue", "ner", "qa", "classification")  # the registry's order: suite, then name
TRAIN, VALIDATION = "train", "validation"


@dataclass(frozen=True)
class EvalSplit:
    """One scored split. Its `name` is the task's name in results (MNLI has two: matched and mismatched)."""

    name: str = "__task__"
    hub_split: str = "validation"
    file: str = "validation"  # <data_dir>/<local_dir>/<file>.jsonl
    display: str | None = None  # the results table's column name (default: the task's)


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    hub_id: str
    hub_config: str | None
    local_dir: str  # relative to --data-dir
    columns: tuple[str, ...]  # input columns every row must have (label column not included)
    display: str = ""  # the name papers and results tables use ("SST-2"); default: `name`
    label_column: str = "label"
    labels: tuple[str, ...] = ()  # class names: class id i is labels[i]; empty for regression and QA
    metric: str = "glue"  # a module of briskbert.metrics
    metric_config: str | None = None
    main_metric: str = "accuracy"
    table_metrics: tuple[str, ...] = ()  # shown in the results table (default: the main metric)
    suites: tuple[str, ...] = ()
    hub_train_split: str = "train"
    eval_splits: tuple[EvalSplit, ...] = (EvalSplit(),)
    hub_columns: dict = field(default_factory=dict)  # Hub column -> our column, where the Hub names differ
    hub_labels: tuple[str, ...] | None = None  # names of the Hub's integer labels, where its order differs
    inputs: str | None = None  # a formatter of INPUT_FORMATS for rows that are not plain text columns
    percent: bool = False  # metrics already in percent (SQuAD's official script), not fractions
    license: DataLicense | None = None  # of the task's data; a model card's license follows it
    finetune: dict = field(default_factory=dict)  # fine-tuning defaults: FinetuneConfig fields

    @property
    def num_labels(self) -> int:
        return 1 if self.kind == "regression" else len(self.labels)

    @property
    def head(self) -> Head:
        """The model class this task fine-tunes; its `auto_class` loads any transformers encoder with that head."""
        return head_named(KIND_HEADS[self.kind])

    @property
    def splits(self) -> tuple[EvalSplit, ...]:
        return tuple(dataclasses.replace(s, name=self.name, display=s.display or self.display)
                     if s.name == "__task__" else s for s in self.eval_splits)

    @property
    def metrics_shown(self) -> tuple[str, ...]:
        return self.table_metrics or (self.main_metric,)

    def text_pair(self, row: dict) -> tuple:
        """(first text, second text or None) for classification and regression rows."""
        if self.inputs is not None:
            return INPUT_FORMATS[self.inputs](row)
        texts = [row[column] for column in self.columns]
        return texts[0], texts[1] if len(texts) > 1 else None

    def choices(self, row: dict) -> list[tuple]:
        """One (text, pair) per choice, for multiple-choice rows."""
        return INPUT_FORMATS[self.inputs](row)

    def plain_text(self, row: dict) -> str:
        """The row's input as one text, its label left out: what task-adaptive pretraining reads."""
        if self.kind == "token_classification":
            return " ".join(row[self.columns[0]])
        if self.kind == "question_answering":
            return f"{row['question']} {row['context']}"
        pairs = self.choices(row) if self.kind == "multiple_choice" else [self.text_pair(row)]
        return " ".join(text for pair in pairs for text in pair if text)


# ---- how the tasks whose input is not plain text columns are put into words


def _mark(text: str, start: int, end: int) -> str:
    return f"{text[:start]}*{text[start:end]}*{text[end:]}"


def wic_text(row: dict) -> tuple:
    """WiC: the target word marked with asterisks in both sentences (from the character offsets)."""
    return (_mark(row["sentence1"], row["start1"], row["end1"]), _mark(row["sentence2"], row["start2"], row["end2"]))


def wsc_text(row: dict) -> tuple:
    """WSC: the sentence with the pronoun marked, and the question whether it refers to the candidate."""
    words = row["text"].split(" ")
    index, pronoun = row["span2_index"], row["span2_text"]
    if 0 <= index < len(words) and words[index].lower().startswith(pronoun.split(" ")[0].lower()):
        words[index] = f"*{words[index]}*"
    return " ".join(words), f"Does *{pronoun}* refer to {row['span1_text']}?"


def multirc_text(row: dict) -> tuple:
    return row["paragraph"], f"{row['question']} {row['answer']}"


def pubmedqa_text(row: dict) -> tuple:
    return row["question"], " ".join(row["context"]["contexts"])


def copa_choices(row: dict) -> list[tuple]:
    """COPA as multiple choice: the premise, then each alternative after the connective its question asks."""
    connective = "because" if row["question"] == "cause" else "so"
    premise = row["premise"].rstrip(".")
    return [(premise, f"{connective} {row[c][0].lower()}{row[c][1:]}") for c in ("choice1", "choice2")]


INPUT_FORMATS = {"wic": wic_text, "wsc": wsc_text, "multirc": multirc_text, "pubmedqa": pubmedqa_text,
                 "copa": copa_choices}


# ---- the registry: hub_configs/tasks/*.yaml


def task_from_file(path: Path) -> Task:
    """A Task from its YAML file (the task's name is the file's); unknown keys and values are errors naming the file."""
    values = yaml.safe_load(path.read_text()) or {}
    names = {f.name for f in dataclasses.fields(Task)} - {"name"}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"Task file {path} has unknown key(s) {unknown}; a task file sets {sorted(names)}.")
    for listed in ("columns", "labels", "table_metrics", "suites", "hub_labels"):
        if values.get(listed) is not None:
            values[listed] = tuple(values[listed])
    if "eval_splits" in values:
        values["eval_splits"] = tuple(EvalSplit(**split) for split in values["eval_splits"])
    if values.get("license") is not None:
        license_fields = dict(values["license"])
        values["license"] = DataLicense(license_fields.pop("name"), **license_fields)
    task = Task(name=path.stem, **values)
    problems = [f"kind {task.kind!r} is not one of {KINDS}"] if task.kind not in KINDS else []
    if task.metric not in METRIC_MODULES:
        problems.append(f"metric {task.metric!r} is not one of briskbert.metrics' {METRIC_MODULES}")
    if task.inputs is not None and task.inputs not in INPUT_FORMATS:
        problems.append(f"inputs {task.inputs!r} is not one of {sorted(INPUT_FORMATS)}")
    if task.kind == "multiple_choice" and task.inputs is None:
        problems.append("a multiple_choice task needs `inputs` (the formatter that builds its choices)")
    if not set(task.suites) <= set(SUITE_ORDER):
        problems.append(f"suites {list(task.suites)} must be among {SUITE_ORDER}")
    if problems:
        raise ValueError(f"Task file {path}: " + "; ".join(problems) + ".")
    if not task.display:
        task = dataclasses.replace(task, display=task.name)
    return task


def load_registry(folder: Path) -> dict[str, Task]:
    tasks = [task_from_file(path) for path in folder.glob("*.yaml")]
    rank = {suite: i for i, suite in enumerate(SUITE_ORDER)}
    tasks.sort(key=lambda task: (min((rank[s] for s in task.suites), default=len(rank)), task.name))
    return {task.name: task for task in tasks}


TASKS: dict[str, Task] = load_registry(package_folder(RECIPES) / "tasks")
SUITES = {suite: tuple(name for name, task in TASKS.items() if suite in task.suites) for suite in SUITE_ORDER}
# results names that are scored by another task's run (MNLI-mm comes from the MNLI fine-tune)
ALIASES = {split.name: task.name for task in TASKS.values() for split in task.splits if split.name != task.name}


def get_task(name: str) -> Task:
    name = ALIASES.get(name, name)
    if name not in TASKS:
        raise SystemExit(f"Unknown task {name!r}. Known tasks: {', '.join(TASKS)}; suites: {', '.join(SUITES)}.")
    return TASKS[name]


def scored_split(name: str) -> EvalSplit:
    """The scored split a results name stands for ("mnli_mismatched" -> MNLI's mismatched split)."""
    return next(split for split in get_task(name).splits if split.name == name)


def expand_tasks(spec: str) -> list[str]:
    """'glue' / 'superglue' / 'sst2,mrpc' / 'glue,squad' -> task names, in order, without repeats."""
    names = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        for name in SUITES.get(part, (part,)):
            name = get_task(name).name
            if name not in names:
                names.append(name)
    if not names:
        raise SystemExit("--tasks is empty: name tasks (sst2,mrpc) or a suite (glue, superglue, ner, qa).")
    return names


# ---- data


def local_file(data_dir: Path, task: Task, stem: str) -> Path | None:
    folder = Path(data_dir) / task.local_dir
    for suffix in (".jsonl", ".jsonl.gz", ".json", ".json.gz"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def has_local_data(task: Task, data_dir) -> bool:
    return all(local_file(data_dir, task, stem) for stem in (TRAIN, *(s.file for s in task.splits)))


def load_task_data(task: Task, data_dir=None, max_train_samples: int | None = None,
                   max_eval_samples: int | None = None, sample_seed: int = 0) -> datasets.DatasetDict:
    """`train` plus one split per scored split (named as in results), checked and with labels as class ids.

    `max_train_samples` keeps a fixed random subset (the same for every fine-tuning seed, drawn with
    `sample_seed`); `max_eval_samples` keeps the first rows of each scored split."""
    if data_dir is not None:
        _check_labels_file(task, Path(data_dir) / task.local_dir)
    out = {}
    for role, hub_split, stem in ((TRAIN, task.hub_train_split, TRAIN),
                                  *((s.name, s.hub_split, s.file) for s in task.splits)):
        if data_dir is not None:
            path = local_file(data_dir, task, stem)
            if path is None:
                raise SystemExit(
                    f"{task.name}: no {stem} file in {Path(data_dir) / task.local_dir} (looked for {stem}.jsonl, "
                    f"{stem}.jsonl.gz): lay the folder out like the repo's data/ (<data_dir>/{task.local_dir}/"
                    f"train.jsonl, validation.jsonl), or drop --data-dir to use the Hub dataset {task.hub_id}.")
            rows, source = datasets.load_dataset("json", data_files={role: str(path)}, split=role), str(path)
        else:
            rows = datasets.load_dataset(task.hub_id, task.hub_config, split=hub_split)
            rows, source = _from_hub_schema(task, rows), f"{task.hub_id}:{task.hub_config}:{hub_split}"
        limit = max_train_samples if role == TRAIN else max_eval_samples
        if limit and len(rows) > limit:
            rows = rows.shuffle(seed=sample_seed).select(range(limit)) if role == TRAIN else rows.select(range(limit))
        out[role] = check_rows(task, rows, source)
        if role != TRAIN and task.kind == "classification" and len(set(out[role][task.label_column])) < 2:
            warnings.warn(f"{task.name}: every row of {source} has the same label, so a model that always predicts it "
                          f"scores perfectly and the score says nothing: score a split that holds every class (e.g. "
                          f"re-split the data by a hash of the text).", stacklevel=2)
    return datasets.DatasetDict(out)


def training_texts(task: Task, data_dir=None) -> list[str]:
    """The task's training rows as plain texts, labels left out (task-adaptive pretraining, Gururangan et al. 2020)."""
    return [task.plain_text(row) for row in load_task_data(task, data_dir)[TRAIN]]


def _from_hub_schema(task: Task, rows: datasets.Dataset) -> datasets.Dataset:
    renames = {hub: ours for hub, ours in task.hub_columns.items() if hub in rows.column_names}
    if renames:
        rows = rows.rename_columns(renames)
    if task.hub_labels is not None:  # the Hub numbers the labels differently: go through the names
        order = {name: i for i, name in enumerate(task.labels)}
        remap = [order[name] for name in task.hub_labels]
        column = task.label_column
        rows = rows.map(lambda row: {column: [remap[t] for t in row[column]] if isinstance(row[column], list)
                                     else remap[row[column]]}, features=None)
    return rows


def _check_labels_file(task: Task, folder: Path) -> None:
    """A local labels.json (as in data/conll2003) must name the registry's labels, in the same order."""
    path = folder / "labels.json"
    if not path.is_file() or not task.labels:
        return
    names = json.loads(path.read_text()).get(task.label_column)
    if names is not None and tuple(names) != task.labels:
        raise SystemExit(f"{task.name}: {path} lists {task.label_column} labels {names}, but the task expects "
                         f"{list(task.labels)} in this order: re-encode the data with the task's label order.")


def check_rows(task: Task, rows: datasets.Dataset, source: str) -> datasets.Dataset:
    """Fail early, naming the fix, on a missing column or a label outside the label set; map label names to ids."""
    needed = (*task.columns, task.label_column)
    missing = [c for c in needed if c not in rows.column_names]
    if missing:
        raise SystemExit(
            f"{task.name}: {source} has no column(s) {missing} (it has {rows.column_names}); the task reads "
            f"{list(needed)} (the schema of {task.hub_id}{'/' + task.hub_config if task.hub_config else ''}): "
            f"rename the column(s) in the data.")
    if task.kind == "question_answering":
        for i, answers in enumerate(rows[task.label_column]):
            if not isinstance(answers, dict) or not answers.get("text") or "answer_start" not in answers:
                raise SystemExit(f"{task.name}: row {i} of {source} has answers={answers!r}; expected "
                                 f"{{'text': [...], 'answer_start': [...]}} with at least one answer.")
        return rows
    if task.kind == "regression":
        for i, value in enumerate(rows[task.label_column]):
            if not isinstance(value, (int, float)) or value != value:
                raise SystemExit(f"{task.name}: row {i} of {source} has {task.label_column}={value!r}; "
                                 f"a regression task needs a number on every row.")
        return rows.cast_column(task.label_column, datasets.Value("float32"))
    ids = {name: i for i, name in enumerate(task.labels)}

    def to_id(value, row_index):
        if isinstance(value, str) and value in ids:
            return ids[value]
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(task.labels):
            return value
        hint = " (-1 marks an unlabelled test split: score a labelled split)" if value == -1 else ""
        raise SystemExit(
            f"{task.name}: row {row_index} of {source} has {task.label_column}={value!r}, outside the label set "
            f"{dict(enumerate(task.labels))}{hint}: fix the data, or map its labels to these ids or names.")

    labels = rows[task.label_column]
    if task.kind == "token_classification":
        converted = [[to_id(tag, i) for tag in tags] for i, tags in enumerate(labels)]
        for i, (tokens, tags) in enumerate(zip(rows["tokens"], converted)):
            if len(tokens) != len(tags):
                raise SystemExit(f"{task.name}: row {i} of {source} has {len(tokens)} tokens but {len(tags)} "
                                 f"{task.label_column}: every token needs exactly one tag.")
    else:
        converted = [to_id(value, i) for i, value in enumerate(labels)]
    return rows.remove_columns(task.label_column).add_column(task.label_column, converted)
