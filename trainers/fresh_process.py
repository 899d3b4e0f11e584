"""Run Python in a fresh interpreter that cannot import BriskBERT, as a user who never installed it.

Proves that a saved folder loads through transformers' remote code alone: the child process has the
repo off sys.path, no PYTHONPATH, the Hub offline, and any import of `briskbert` (or of the repo's
top-level folders) fails.
"""

import os
import subprocess
import sys
from pathlib import Path

BLOCK_BRISKBERT = """
import sys

class _NoBriskBert:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("briskbert", "modeling", "trainers"):
            raise ImportError(f"{name} is deliberately not importable here")

sys.meta_path.insert(0, _NoBriskBert())
"""


def run_without_briskbert(code: str, cwd: Path, timeout: float = 600) -> str:
    """Run `code` in a fresh interpreter in `cwd`; return its stdout, or raise with its stderr."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_BRISKBERT + code],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"fresh interpreter failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout
