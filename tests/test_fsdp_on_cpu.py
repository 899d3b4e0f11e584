"""FSDP on CPU processes. accelerate runs FSDP on GPUs only: given an FSDP config on CPU processes it silently runs
plain DDP (measured here: no sharded state written), so the launchers refuse it, naming the config to use
(tests/test_gpu_check.py, whose CPU mode launches the shipped FSDP config, checks the refusal). The
sharded path itself is proven under torch directly (tests/fsdp_worker.py: FSDP2's fully_shard per BriskBertLayer,
gloo, torch.distributed.checkpoint): BriskBERT trains on the 1-process curve, writes one shard per process, resumes
bit for bit, reshards onto another number of processes, and gathers into an ordinary save_pretrained folder."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from launchers import free_port, launch_environment
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
WORKER = str(REPO / "tests" / "fsdp_worker.py")


def worker(output: Path, processes: int, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
         str(free_port()), WORKER, "--output", str(output), "--steps", "20", "--save-at", "10", *args],
        cwd=REPO, env=launch_environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((output / "losses.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fsdp")
    worker(root / "one", 1)
    worker(root / "sharded", 2)
    return {"one": root / "one", "sharded": root / "sharded", "root": root}


def losses(folder: Path) -> list[float]:
    return json.loads((folder / "losses.json").read_text())["losses"]


def test_fsdp2_on_two_gloo_processes_follows_the_one_process_curve(runs):
    assert json.loads((runs["sharded"] / "losses.json").read_text())["sharded"], "the weights were not DTensors"
    assert len(losses(runs["sharded"])) == 20
    assert losses(runs["sharded"]) == pytest.approx(losses(runs["one"]), rel=1e-4)
    shards = sorted(p.name for p in (runs["sharded"] / "step_10").glob("*.distcp"))
    assert shards == ["__0_0.distcp", "__1_0.distcp"], "one shard per process"
    whole = (runs["one"] / "step_10" / "__0_0.distcp").stat().st_size
    assert all(0.4 * whole < (runs["sharded"] / "step_10" / name).stat().st_size < 0.6 * whole for name in shards)
    assert not list(runs["sharded"].glob(".partial-*"))


def test_the_sharded_checkpoint_resumes_bit_for_bit_and_reshards_onto_one_process(runs):
    checkpoint = str(runs["sharded"] / "step_10")
    same = worker(runs["root"] / "resumed-on-2", 2, "--resume-from", checkpoint)
    assert same["start"] == 10 and same["losses"] == losses(runs["sharded"])[10:]
    resharded = worker(runs["root"] / "resumed-on-1", 1, "--resume-from", checkpoint)
    assert resharded["losses"] == pytest.approx(losses(runs["one"])[10:], rel=1e-4)


def test_the_gathered_weights_are_an_ordinary_save_pretrained_folder(runs, run_fresh_python, tmp_path):
    final = runs["sharded"] / "final"
    assert not list(final.glob("_fsdp*")), "torch's FSDP modules were saved as the model's code"
    auto_map = json.loads((final / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForMaskedLM"] == "modeling_briskbert.BriskBertForMaskedLM"
    gathered = load_file(final / "model.safetensors")
    reference = load_file(runs["one"] / "final" / "model.safetensors")
    assert gathered.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(gathered[name], tensor, atol=1e-4, rtol=1e-3)
    stdout = run_fresh_python(f"""
        from transformers import AutoModelForMaskedLM
        model = AutoModelForMaskedLM.from_pretrained({str(runs["sharded"] / "final")!r}, trust_remote_code=True)
        print(type(model).__name__, model.num_parameters())
    """, tmp_path)
    assert stdout.split()[0] == "BriskBertForMaskedLM"
