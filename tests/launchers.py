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
    """A port no other test worker will pick: each pytest-xdist worker scans its own block below the OS's ephemeral
    range. A port the OS hands out (bind to 0) can be handed to the other worker's launch too before this one binds
    it; its rank 1 then joins the wrong store and waits until the timeout."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    start = 20000 + 1000 * (int(worker[2:]) if worker[2:].isdigit() else 0)
    for port in range(start, start + 1000):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}..{start + 999}")


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
