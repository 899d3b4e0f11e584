"""Test support: the pretraining launcher started as a user starts it (`python scripts/pretrain.py`, or under
`accelerate launch` on 2 processes), and its records."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from launchers import accelerate_two_processes, launch_environment

REPO = Path(__file__).resolve().parents[1]
SCRIPT = str(REPO / "scripts" / "pretrain.py")
RECIPE = str(REPO / "hub_configs" / "tiny-cpu.yaml")
# small and deterministic: no dropout, a fixed MFU roof instead of a matmul measurement
FAST = ["--max-seq-length", "64", "--eval-rows", "16", "--log-every", "1", "--eval-every", "4",
        "--hidden-dropout-prob", "0", "--peak-tflops", "1"]


def pretrain_command(output_dir: Path, *args: str, processes: int = 1) -> list[str]:
    launcher = [sys.executable, SCRIPT] if processes == 1 else accelerate_two_processes(SCRIPT)
    return [*launcher, "--config", RECIPE, "--output-dir", str(output_dir), *FAST, *args]


def pretrain(output_dir: Path, *args: str, processes: int = 1, expect_rc: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(pretrain_command(output_dir, *args, processes=processes), cwd=REPO,
                            env=launch_environment(), capture_output=True, text=True, timeout=600)
    if result.returncode != expect_rc:
        pytest.fail(f"pretrain.py exited {result.returncode} (expected {expect_rc})\n{result.stdout[-3000:]}\n"
                    f"{result.stderr[-5000:]}", pytrace=False)
    return result


def metrics(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


def losses(output_dir: Path) -> list[float]:
    return [record["loss"] for record in metrics(output_dir)]
