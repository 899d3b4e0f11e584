"""Domain-variant recipes (hub_configs/variants/*.yaml) and the stage bookkeeping of scripts/build_variant.py.

A stage is finished when its marker `stages/<name>.json` exists; the marker is written last, so a stage that
was interrupted has none and is redone (its half-written output removed first, except pretraining, which
resumes from its own checkpoints).
"""

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# `compare` (the general model scored on the same tasks) comes last, so adding a baseline later redoes nothing else
STAGES = ("corpus", "tokenizer", "pretrain", "evaluate", "card", "compare")
STRATEGIES = ("scratch", "continue")


@dataclass
class VariantRecipe:
    variant: str
    corpus: list[str]  # files or folders under --data-dir, or one hub dataset id
    tasks: list[str]  # downstream tasks of scripts/evaluate.py's registry
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

    @classmethod
    def load(cls, path: Path) -> "VariantRecipe":
        if not path.is_file():
            raise SystemExit(f"No variant recipe {path}; the recipes are in hub_configs/variants/.")
        values = yaml.safe_load(path.read_text()) or {}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                         and f.name not in values)
        if unknown or missing:
            raise SystemExit(f"Variant recipe {path}: unknown field(s) {unknown}, missing field(s) {missing}; "
                             f"fields are {sorted(names)}.")
        return cls(**values)


class Stages:
    def __init__(self, root: Path):
        self.root = root
        self.markers = root / "stages"

    def done(self, stage: str, **inputs) -> bool:
        """Whether `stage` finished earlier (with these `inputs`, when given). A stage that runs again makes
        every later stage run again too, since they were built from its old output."""
        marker = self.markers / f"{stage}.json"
        finished = marker.is_file()
        if finished and inputs:
            record = json.loads(marker.read_text())
            finished = all(record.get(name) == value for name, value in inputs.items())
        print(f"== stage {stage}: {'finished earlier, skipped' if finished else 'running'}", flush=True)
        if not finished:
            self.reset_from(stage)
        return finished

    def finish(self, stage: str, record: dict) -> None:
        self.markers.mkdir(parents=True, exist_ok=True)
        temporary = self.markers / f".{stage}.json"
        temporary.write_text(json.dumps({"stage": stage, "finished": time.time(), **record}, indent=2))
        temporary.rename(self.markers / f"{stage}.json")

    def reset_from(self, stage: str) -> None:
        """Forget `stage` and every later one (they are rebuilt from the earlier stages' artifacts)."""
        for later in STAGES[STAGES.index(stage):]:
            (self.markers / f"{later}.json").unlink(missing_ok=True)

    @staticmethod
    def clear(path: Path) -> None:
        """Remove the half-written output of an unfinished stage."""
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
