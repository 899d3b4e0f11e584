"""Training checkpoints that are either complete or absent.

A checkpoint is `accelerate`'s state (model, optimizer, scheduler, every process's RNG) plus
`trainer_state.json` (step, tokens seen, data position), written into a temporary folder and renamed into
place only when complete, so a run killed mid-save (even with kill -9) leaves the previous checkpoint as
the latest. Only the last `keep` checkpoints are kept.
"""

import json
import shutil
from pathlib import Path

PREFIX = "step_"
STATE_FILE = "trainer_state.json"


def checkpoint_dirs(root: Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first (temporary folders of interrupted saves are ignored)."""
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(done, key=lambda p: int(p.name[len(PREFIX):]))


def save_checkpoint(accelerator, root: Path, step: int, trainer_state: dict, keep: int) -> Path:
    final = root / f"{PREFIX}{step:08d}"
    partial = root / f".partial-{PREFIX}{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))  # every process writes its RNG state; the main one the rest
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / STATE_FILE).write_text(json.dumps(trainer_state, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        for stale in checkpoint_dirs(root)[:-keep] if keep > 0 else []:
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_latest_checkpoint(accelerator, root: Path) -> dict | None:
    """Restore the newest complete checkpoint into the prepared objects; returns its trainer state."""
    found = checkpoint_dirs(root)
    if not found:
        return None
    accelerator.load_state(str(found[-1]))
    return json.loads((found[-1] / STATE_FILE).read_text())
