"""Test support: the launchers as a user starts them, their installed console scripts (`briskbert-pretrain`, ...)."""

import shutil
import sys
from pathlib import Path


def console_script(name: str) -> str:
    """The installed console script `name` of the Python running the tests (its bin folder, else PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"console script {name} is not installed: pip install -e . (the README's set-up)")
    return found
