"""One record per logging step, to the console, TensorBoard (through accelerate's tracker) and metrics.jsonl.

On resume the JSON Lines file is cut back to the checkpoint's step first, so the curve a resumed run leaves
is the curve an uninterrupted run would have left, with no duplicated steps.
"""

import json
from pathlib import Path


class MetricsLog:
    def __init__(self, accelerator, path: Path, resumed_step: int | None = None):
        self.accelerator, self.path = accelerator, path
        if accelerator.is_main_process and path.exists():
            if resumed_step is None:
                path.unlink()  # a fresh run into an old output folder starts a fresh log
            else:
                kept = [line for line in path.read_text().splitlines() if _step(line) <= resumed_step]
                path.write_text("".join(line + "\n" for line in kept))

    def log(self, record: dict, console) -> None:
        self.accelerator.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])
        if not self.accelerator.is_main_process:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        console(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))


def _step(line: str) -> float:
    """A record's step; a line torn by a kill mid-write (or blank) sorts after every checkpoint and is dropped."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")
