"""Test support: the launchers as a user starts them, their installed console scripts (`briskbert-pretrain`, ...)."""

import os
import shutil
import socket
import sys
from pathlib import Path


def console_script(name: str) -> str:
    """The installed console script `name` of the Python running the tests (its bin folder, else PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"console script {name} is not installed: pip install -e . (the README's set-up)")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_environment() -> dict:
    """The environment a launched run gets in the tests: one thread per process, so a run on 1 or 2 processes does the
    same arithmetic in the same order; offline; no tokenizer threads."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def accelerate_two_processes(*args: str) -> list[str]:
    """The command `accelerate launch --config_file hub_configs/accelerate/cpu-2proc.yaml ...` on a free port, so
    launches in parallel test workers do not meet on accelerate's default one."""
    config = Path(__file__).resolve().parents[1] / "hub_configs" / "accelerate" / "cpu-2proc.yaml"
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
            "--main_process_port", str(free_port()), *args]
