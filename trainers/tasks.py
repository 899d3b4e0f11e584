"""The downstream task registry: what each task's data looks like, where it comes from, and how it is scored.

    task = get_task("mrpc")
    data = load_task_data(task, data_dir="../shared/data")   # or data_dir=None: the Hub dataset
    data["train"], data["validation"]                          # checked rows, labels as class ids

A task names its Hub dataset (`nyu-mll/glue`, `aps/super_glue`, ...) and the same schema in a local folder laid
out like the project's development data (`<data_dir>/glue/mrpc/train.jsonl`, `validation.jsonl`, `.jsonl.gz`
too). Rows are checked on load: a missing column, a label outside the label set or an unknown task stops
the run with a message that names the fix.

Task kinds: `classification` (one text or a pair), `regression` (STS-B), `multiple_choice` (COPA),
`token_classification` (NER, IOB2 tags) and `question_answering` (SQuAD v1.1, extractive).
"""

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import datasets

KINDS = ("classification", "regression", "multiple_choice", "token_classification", "question_answering")
TRAIN, VALIDATION = "train", "validation"


@dataclass(frozen=True)
class EvalSplit:
    """One scored split. Its `name` is the task's name in results (MNLI has two: matched and mismatched)."""

    name: str
    hub_split: str = "validation"
    file: str = "validation"  # <data_dir>/<local_dir>/<file>.jsonl


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    hub_id: str
    hub_config: str | None
    local_dir: str  # relative to --data-dir
    columns: tuple[str, ...]  # input columns every row must have (label column not included)
    label_column: str = "label"
    labels: tuple[str, ...] = ()  # class names: class id i is labels[i]; empty for regression and QA
    metric: str = "glue"  # a module of briskbert.metrics
    metric_config: str | None = None
    main_metric: str = "accuracy"
    table_metrics: tuple[str, ...] = ()  # shown in the results table (default: the main metric)
    suites: tuple[str, ...] = ()
    hub_train_split: str = "train"
    eval_splits: tuple[EvalSplit, ...] = (EvalSplit("__task__"),)
    hub_columns: dict = field(default_factory=dict)  # Hub column -> our column, where the Hub names differ
    hub_labels: tuple[str, ...] | None = None  # names of the Hub's integer labels, where its order differs
    text: Callable[[dict], tuple] | None = None  # row -> (text, pair or None); default: the columns in order
    percent: bool = False  # metrics already in percent (SQuAD's official script), not fractions

    @property
    def num_labels(self) -> int:
        return 1 if self.kind == "regression" else len(self.labels)

    @property
    def splits(self) -> tuple[EvalSplit, ...]:
        return tuple(EvalSplit(self.name, s.hub_split, s.file) if s.name == "__task__" else s for s in self.eval_splits)

    def inputs(self, row: dict) -> tuple:
        """(first text, second text or None) for classification and regression rows."""
        if self.text is not None:
            return self.text(row)
        texts = [row[column] for column in self.columns]
        return texts[0], texts[1] if len(texts) > 1 else None


# ---- how the few tasks whose input is not plain text columns are put into words


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


# ---- the registry

GLUE = "nyu-mll/glue"
SUPER_GLUE = "aps/super_glue"
PAIR = ("sentence1", "sentence2")
NLI3 = ("entailment", "neutral", "contradiction")
NLI2 = ("entailment", "not_entailment")
YES_NO = ("False", "True")
CONLL_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
GERMEVAL14_TAGS = ("O",) + tuple(f"{p}-{t}{s}" for t in ("LOC", "ORG", "OTH", "PER") for s in ("", "deriv", "part")
                                  for p in ("B", "I"))
LER_TYPES = ("AN", "EUN", "GRT", "GS", "INN", "LD", "LDS", "LIT", "MRK", "ORG", "PER", "RR", "RS", "ST", "STR", "UN",
             "VO", "VS", "VT")
LER_TAGS = ("O",) + tuple(f"{p}-{t}" for t in LER_TYPES for p in ("B", "I"))
UNFAIR_TOS = ("Other", "Arbitration", "Unilateral change", "Content removal", "Jurisdiction", "Choice of law",
              "Limitation of liability", "Unilateral termination", "Contract by using")


def _glue(name, columns, labels, metrics=("accuracy",), **kwargs) -> Task:
    return Task(name, kwargs.pop("kind", "classification"), GLUE, name, f"glue/{name}", columns, labels=labels,
                metric="glue", metric_config=name, main_metric=metrics[0], table_metrics=metrics,
                suites=kwargs.pop("suites", ("glue",)), **kwargs)


def _super_glue(name, columns, labels, metrics=("accuracy",), config=None, **kwargs) -> Task:
    config = config or name
    return Task(name, kwargs.pop("kind", "classification"), SUPER_GLUE, config, f"superglue/{config}", columns,
                labels=labels, metric="super_glue", metric_config=config, main_metric=metrics[0],
                table_metrics=metrics, suites=("superglue",), **kwargs)


def _ner(name, hub_id, hub_config, local_dir, tags, **kwargs) -> Task:
    return Task(name, "token_classification", hub_id, hub_config, local_dir, ("tokens",), label_column="ner_tags",
                labels=tags, metric="seqeval_ner", main_metric="f1", table_metrics=("f1",), suites=("ner",), **kwargs)


def _classification(name, hub_id, hub_config, local_dir, labels, main="accuracy", **kwargs) -> Task:
    kwargs.setdefault("columns", ("text",))
    config = "binary" if len(labels) == 2 else "multiclass"
    return Task(name, "classification", hub_id, hub_config, local_dir, labels=labels, metric="classification",
                metric_config=config, main_metric=main, table_metrics=(main,), suites=("classification",), **kwargs)


TASKS: dict[str, Task] = {task.name: task for task in (
    # GLUE (Wang et al. 2019): the official metric of each task
    _glue("cola", ("sentence",), ("unacceptable", "acceptable"), ("matthews_correlation",)),
    _glue("sst2", ("sentence",), ("negative", "positive")),
    _glue("mrpc", PAIR, ("not_equivalent", "equivalent"), ("f1", "accuracy")),
    _glue("stsb", PAIR, (), ("pearson", "spearmanr"), kind="regression"),
    _glue("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("f1", "accuracy")),
    _glue("mnli", ("premise", "hypothesis"), NLI3, eval_splits=(
        EvalSplit("mnli", "validation_matched", "validation_matched"),
        EvalSplit("mnli_mismatched", "validation_mismatched", "validation_mismatched"))),
    _glue("qnli", ("question", "sentence"), NLI2),
    _glue("rte", PAIR, NLI2, suites=("glue", "superglue")),  # SuperGLUE's RTE is GLUE's RTE data
    _glue("wnli", PAIR, ("not_entailment", "entailment")),
    # SuperGLUE (Wang et al. 2019), ReCoRD excluded
    _super_glue("boolq", ("question", "passage"), YES_NO),
    _super_glue("cb", ("premise", "hypothesis"), ("entailment", "contradiction", "neutral"), ("accuracy", "f1")),
    _super_glue("copa", ("premise", "choice1", "choice2", "question"), ("choice1", "choice2"),
                kind="multiple_choice"),
    _super_glue("multirc", ("paragraph", "question", "answer", "idx"), YES_NO, ("f1_a", "exact_match"),
                text=multirc_text),
    _super_glue("wic", ("word", "sentence1", "sentence2", "start1", "end1", "start2", "end2"), YES_NO,
                text=wic_text),
    _super_glue("wsc", ("text", "span1_index", "span2_index", "span1_text", "span2_text"), YES_NO,
                config="wsc.fixed", text=wsc_text),
    # named-entity recognition: entity-level F1 (seqeval)
    _ner("conll2003", "eriktks/conll2003", None, "conll2003", CONLL_TAGS),
    _ner("ncbi_disease", "ncbi/ncbi_disease", None, "biomedical/ncbi_disease", ("O", "B-Disease", "I-Disease")),
    _ner("bc5cdr", "tner/bc5cdr", None, "biomedical/bc5cdr", ("O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"),
         hub_columns={"tags": "ner_tags"}, hub_labels=("O", "B-Chemical", "B-Disease", "I-Disease", "I-Chemical")),
    _ner("germeval2014", "GermanEval/germeval_14", None, "german/germeval2014_ner", GERMEVAL14_TAGS),
    _ner("german_ler", "elenanereiss/german-ler", None, "legal/german_ler", LER_TAGS),
    # extractive question answering
    Task("squad", "question_answering", "rajpurkar/squad", "plain_text", "squad", ("id", "context", "question"),
         label_column="answers", metric="squad", main_metric="f1", table_metrics=("exact_match", "f1"),
         suites=("qa",), percent=True),
    # domain classification
    _classification("pubmedqa", "qiaojin/PubMedQA", "pqa_labeled", "biomedical/pubmedqa", ("yes", "no", "maybe"),
                    columns=("question", "context"), label_column="final_decision", text=pubmedqa_text,
                    hub_train_split="train[:90%]", eval_splits=(EvalSplit("__task__", "train[90%:]"),)),
    _classification("unfair_tos", "nguha/legalbench", "unfair_tos", "legal/unfair_tos", UNFAIR_TOS, main="macro_f1",
                    hub_columns={"answer": "label"}, hub_train_split="test[:90%]",
                    eval_splits=(EvalSplit("__task__", "test[90%:]"),)),
    _classification("overruling", "nguha/legalbench", "overruling", "legal/overruling", ("No", "Yes"), main="f1",
                    hub_columns={"answer": "label"}, hub_train_split="test[:90%]",
                    eval_splits=(EvalSplit("__task__", "test[90%:]"),)),
    _classification("germeval2018", "jfrei/GermEval18", None, "german/germeval2018", ("OTHER", "OFFENSE"),
                    main="macro_f1", label_column="label_coarse", hub_columns={"coarse": "label_coarse"},
                    hub_train_split="train[:4509]", eval_splits=(EvalSplit("__task__", "train[4509:]"),)),
    _classification("germeval2018_fine", "jfrei/GermEval18", None, "german/germeval2018",
                    ("OTHER", "ABUSE", "INSULT", "PROFANITY"), main="macro_f1", label_column="label_fine",
                    hub_columns={"fine": "label_fine"}, hub_train_split="train[:4509]",
                    eval_splits=(EvalSplit("__task__", "train[4509:]"),)),
    _classification("tsac", "tunis-ai/tsac", None, "tunisian/tsac", ("negative", "positive"),
                    hub_columns={"sentence": "text"}, hub_train_split="train[:90%]",
                    eval_splits=(EvalSplit("__task__", "train[90%:]"),)),
    _classification("tunizi", "chaymafourati/tunizi", None, "tunisian/tunizi", ("negative", "positive"),
                    hub_columns={"sentence": "text", "target": "label"}, hub_labels=("positive", "negative"),
                    hub_train_split="train[:90%]", eval_splits=(EvalSplit("__task__", "train[90%:]"),)),
)}

SUITES = {suite: tuple(name for name, task in TASKS.items() if suite in task.suites)
          for suite in ("glue", "superglue", "ner", "qa", "classification")}
# results names that are scored by another task's run (MNLI-mm comes from the MNLI fine-tune)
ALIASES = {split.name: task.name for task in TASKS.values() for split in task.splits if split.name != task.name}


def get_task(name: str) -> Task:
    name = ALIASES.get(name, name)
    if name not in TASKS:
        raise SystemExit(f"Unknown task {name!r}. Known tasks: {', '.join(TASKS)}; suites: {', '.join(SUITES)}.")
    return TASKS[name]


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
                    f"{stem}.jsonl.gz): lay the folder out like ../shared/data, or drop --data-dir to use the Hub "
                    f"dataset {task.hub_id}.")
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
    """A local labels.json (as in ../shared/data) must name the registry's labels, in the same order."""
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
