"""Training checkpoints that are either complete or absent.

A checkpoint is `accelerate`'s state (model, optimizer, scheduler, every process's RNG) plus
`trainer_state.json` (step, tokens seen, data position), written into a temporary folder and renamed into
place only when complete, so a run killed mid-save (even with kill -9) leaves the previous checkpoint as
the latest. Only the last `keep` checkpoints are kept. A disk that fills mid-save stops the run on every process
with a message naming the folder and the space a checkpoint needs; the half-written folder is removed, the previous
checkpoint stays, and --resume continues from it once there is room. A checkpoint file truncated or corrupted since
(a copy between machines, a bad disk) is refused at resume, naming it.
"""

import errno
import json
import shutil
from pathlib import Path

import torch

from ..file_integrity import check_files, file_records, folder_bytes

PREFIX = "step_"
STATE_FILE = "trainer_state.json"
FILES_KEY = "files"  # in STATE_FILE: every other file's size and SHA-256, checked before a resume reads them
LOW_SPACE = 16 * 2**20  # bytes: a write that failed with less than this left free ran out of space


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
    full_disk = unless_out_of_space(lambda: accelerator.save_state(str(partial)), partial)  # RNG state: every process
    # a collective, so every process has written its files before the main one hashes them
    if not on_any_process(accelerator, full_disk) and accelerator.is_main_process:
        full_disk = unless_out_of_space(lambda: write_state_file(partial, trainer_state), partial)
    if on_any_process(accelerator, full_disk):  # every process stops, none waits alone at the next collective
        if accelerator.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
        raise SystemExit(no_space_message(root, step, keep, full_disk))
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        for stale in checkpoint_dirs(root)[:-keep] if keep > 0 else []:
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def write_state_file(folder: Path, trainer_state: dict) -> None:
    """Written last: its presence marks the folder complete, and it records every other file's size and SHA-256."""
    record = {**trainer_state, FILES_KEY: file_records(folder)}
    (folder / STATE_FILE).write_text(json.dumps(record, indent=2))


def unless_out_of_space(write, folder: Path) -> BaseException | None:
    """Runs `write`; returns the error if it ran out of space, raises any other."""
    try:
        write()
    except Exception as error:  # noqa: BLE001 - only a full disk is handled; anything else is raised again
        if not out_of_space(error, folder):
            raise
        return error
    return None


def on_any_process(accelerator, error: BaseException | None) -> bool:
    flag = torch.tensor(float(error is not None), device=accelerator.device)
    return bool((accelerator.reduce(flag, "max") if accelerator.num_processes > 1 else flag).item())


def load_latest_checkpoint(accelerator, root: Path) -> dict | None:
    """Restore the newest complete checkpoint into the prepared objects; returns its trainer state."""
    found = checkpoint_dirs(root)
    if not found:
        return None
    trainer_state = json.loads((found[-1] / STATE_FILE).read_text())
    fix = (f"Delete {found[-1]} to resume from {found[-2].name}, the checkpoint before it." if len(found) > 1 else
           "No earlier checkpoint is kept: start again without --resume.")
    check_files(found[-1], trainer_state.pop(FILES_KEY, {}), "checkpoint", fix)
    accelerator.load_state(str(found[-1]))
    return trainer_state


def out_of_space(error: BaseException, folder: Path) -> bool:
    """Whether `error` is a full disk (or quota, or file-size limit): an OSError saying so anywhere in its chain (torch's
    distributed checkpoint wraps each process's), or, since torch.save reports a full disk as a bare iostream error,
    any error that leaves less than LOW_SPACE free where it was writing."""
    seen, pending = set(), [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return True
        pending += [current.__cause__, current.__context__]
        pending += [failure for failure in getattr(current, "failures", {}).values() if isinstance(failure, BaseException)]
    existing = next((path for path in (folder, *folder.parents) if path.exists()), None)
    return existing is not None and shutil.disk_usage(existing).free < LOW_SPACE


def no_space_message(root: Path, step: int, keep: int, error: BaseException | None) -> str:
    found = checkpoint_dirs(root)
    free = shutil.disk_usage(root).free / 2**20
    if not found:
        return (f"No space left in {root} for the step-{step} checkpoint ({free:,.0f} MB free; {error}). Nothing was "
                f"saved yet: free space there, or choose another --output-dir, and start again.")
    size = folder_bytes(found[-1]) / 2**20
    return (f"No space left in {root} for the step-{step} checkpoint: it needs about {size:,.0f} MB (the size of "
            f"{found[-1].name}), and {free:,.0f} MB are free. {found[-1].name} is complete and kept. Free at least "
            f"{max(size - free, 1):,.0f} MB there{' (or lower --keep-checkpoints)' if keep > 1 else ''}, then rerun "
            f"with --resume.")
