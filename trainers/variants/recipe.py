"""A domain variant's recipe (hub_configs/variants/*.yaml): its corpus, tokenizer settings, tasks and data license."""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import check_fields
from ..finetuning.loop import FinetuneConfig
from ..pretraining.loop import PretrainConfig

PRETRAIN_SOURCES = ("corpus", "tasks")


@dataclass
class VariantRecipe:
    variant: str
    corpus: list[str]  # files or folders under --data-dir, or one hub dataset id
    tasks: list[str]  # downstream tasks of the task registry (tasks/registry.py)
    language: list[str] = field(default_factory=lambda: ["en"])
    license: str = "other"  # of the training data; a non-commercial corpus gives a non-commercial model
    license_note: str = ""
    corpus_hub_id: str | None = None
    text_column: str = "text"
    cased: bool = False
    strip_accents: bool | None = None  # None: BERT's rule (strip when uncased)
    unicode_normalization: str = "none"
    arabic_normalization: bool = False
    vocab_size: int = 30528  # scratch: a new tokenizer of this size
    extend_tokens: int = 2000  # continue: the base tokenizer grows by this many domain pieces
    whole_word_masking: bool = False
    # a build from a real pretrained BERT (strategy from-bert): the BERT (a transformers id or folder; None: the
    # shipped all-MiniLM-L6-v2), the pretraining budget (PretrainConfig fields, instead of the preset's), and whether
    # the same BERT also continues pretraining as transformers' BertForMaskedLM on the same rows, side by side
    strategy: str | None = None  # the default of --strategy
    base_model: str | None = None
    pretrain: dict = field(default_factory=dict)
    bert_baseline: bool = False
    # from-bert: what the BERT continues pretraining on, in order: "corpus" (the domain corpus, with the `pretrain`
    # budget) and/or "tasks" (the recipe tasks' training text without labels, task-adaptive pretraining, with the
    # `task_pretrain` budget); each stage starts from the one before
    pretrain_on: list[str] = field(default_factory=lambda: ["corpus"])
    task_pretrain: dict = field(default_factory=dict)
    fill_mask: list[str] = field(default_factory=list)  # sentences with a [MASK] the report fills after each stage
    # the downstream scoring of every model the build compares: briskbert-evaluate's seeds and row caps, and
    # FinetuneConfig fields given to every fine-tuning run (e.g. num_train_epochs)
    seeds: int | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    finetune: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "VariantRecipe":
        if not path.is_file():
            raise SystemExit(f"No variant recipe {path}: pass a bundled recipe's name (e.g. bio) or a YAML path.")
        values = yaml.safe_load(path.read_text()) or {}
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                         and f.name not in values)
        if missing:
            raise SystemExit(f"Variant recipe {path}: missing field(s) {missing}; fields are "
                             f"{sorted(f.name for f in dataclasses.fields(cls))}.")
        recipe = cls(**check_fields(values, cls, f"Variant recipe {path}"))
        check_fields(recipe.pretrain, PretrainConfig, f"Variant recipe {path}, pretrain:")
        check_fields(recipe.task_pretrain, PretrainConfig, f"Variant recipe {path}, task_pretrain:")
        if not recipe.pretrain_on or set(recipe.pretrain_on) - set(PRETRAIN_SOURCES) \
                or len(set(recipe.pretrain_on)) < len(recipe.pretrain_on):
            raise SystemExit(f"Variant recipe {path}: pretrain_on must list {PRETRAIN_SOURCES[0]!r} and/or "
                             f"{PRETRAIN_SOURCES[1]!r} once each, in the order they run; got {recipe.pretrain_on}.")
        if recipe.pretrain_on != ["corpus"] and recipe.strategy != "from-bert":
            raise SystemExit(f"Variant recipe {path}: pretrain_on {recipe.pretrain_on} continues a pretrained BERT; "
                             f"set strategy: from-bert, or pretrain_on: [corpus].")
        check_fields(recipe.finetune, FinetuneConfig, f"Variant recipe {path}, finetune:")
        return recipe
