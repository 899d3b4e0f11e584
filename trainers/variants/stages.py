"""The resumable stages of a variant build: a stage is finished when its marker `stages/<name>.json` exists.

The marker is written last, so a stage that was interrupted has none and is redone (its half-written output removed
first, except pretraining, which resumes from its own checkpoints). A stage that runs again makes every later stage
run again, since they were built from its old output.
"""

import json
import shutil
import time
from pathlib import Path

# `compare` (the general model scored on the same tasks) comes after the variant's own stages, so adding a baseline
# later redoes nothing else; `convert` (from-bert builds) and `report` (with a BERT baseline) run for those alone
STAGES = ("corpus", "convert", "tokenizer", "pretrain", "evaluate", "card", "compare", "report")


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
