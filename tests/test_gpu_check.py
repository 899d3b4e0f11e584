"""scripts/gpu_check.sh, the prepared check for a GPU machine, runs end to end in its CPU mode: every stage (install,
the CUDA tests, the benchmark against HF BertModel and ModernBertModel, packed pretraining, FSDP) runs at tiny sizes and
the summary JSON holds each stage's status and the figures the GPU run reports."""

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from launchers import launch_environment

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def test_gpu_check_runs_every_stage_in_cpu_mode(tmp_path):
    out = tmp_path / "check"
    result = subprocess.run(["bash", str(SCRIPT), str(out), "--cpu"], capture_output=True, text=True, timeout=600,
                            env={**launch_environment(), "PYTHON": sys.executable, "WHEELS": str(tmp_path / "none")},
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    record = json.loads((out / "gpu_check.json").read_text())
    assert [stage["stage"] for stage in record["stages"]] == ["install", "cuda-tests", "benchmark", "pretrain", "fsdp"]
    assert all(stage["status"] == 0 for stage in record["stages"]), record["stages"]
    log = (out / "gpu_check.log").read_text()
    assert re.findall(r"^=== ([\w-]+):", log, flags=re.M) == ["install", "cuda-tests", "benchmark", "pretrain", "fsdp"]
    # on a CPU every CUDA test is skipped, each with its reason in the JUnit report
    skipped = ElementTree.parse(out / "cuda-tests.xml").getroot().iter("skipped")
    reasons = [element.get("message") for element in skipped]
    assert len(reasons) >= 5 and all("CUDA" in reason or "cuda" in reason for reason in reasons), reasons
    models = {row["model"] for row in record["benchmark"]}
    assert {"briskbert:sdpa", "bert", "modernbert"} <= models
    assert record["inference_vs_modernbert"] > 0 and record["train_vs_modernbert"] > 0
    assert record["pretrain"]["steps"] == 3 and record["pretrain"]["tokens_per_s"] > 0
    assert 0 < record["pretrain"]["mfu"] < 1
    # accelerate has no FSDP on CPU: the stage proves the launcher refuses the config rather than run it as DDP
    refusal = (out / "fsdp-refused.log").read_text()
    assert ("The accelerate config asks for FSDP, but accelerate runs FSDP on GPUs only: here it would run 1 CPU "
            "processes as") in refusal and "launch with hub_configs/accelerate/cpu-2proc.yaml" in refusal
    assert not (out / "fsdp" / "checkpoints").exists(), "the refused run wrote a checkpoint"
