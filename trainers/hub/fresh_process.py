"""Run Python in a fresh interpreter that cannot import BriskBERT, as a user who never installed it.

Proves that a saved folder loads through transformers' remote code alone: the child process has no
PYTHONPATH, the Hub offline, a private remote-code cache (nothing an earlier run left can stand in for
the saved code), no stdin (transformers' trust prompt cannot hang), and any import of `briskbert` or of
the repo's top-level folders fails.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

BLOCK_BRISKBERT = """
import sys

class _NoBriskBert:
    BLOCKED = {"briskbert", "modeling", "trainers"}

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED:
            raise ImportError(f"{name} is deliberately not importable here: it must come from the saved folder")
        return None

sys.meta_path.insert(0, _NoBriskBert())
"""


class FreshProcessError(RuntimeError):
    pass


def run_without_briskbert(code: str, cwd: Path, timeout: float = 600) -> str:
    """Run `code` in a fresh interpreter in `cwd`; return its stdout, or raise FreshProcessError with its output."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(Path(cwd) / "hf_modules_cache"))
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_BRISKBERT + textwrap.dedent(code)],
        cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )
    if result.returncode != 0:
        raise FreshProcessError(
            f"fresh interpreter exited with {result.returncode}\n--- stdout ---\n{result.stdout[-4000:]}\n"
            f"--- stderr ---\n{result.stderr[-4000:]}"
        )
    return result.stdout
