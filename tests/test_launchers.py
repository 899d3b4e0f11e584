"""Every job is an installed module with a console script, and `python scripts/<job>.py` from a clone still runs it:
each launcher answers --help in a fresh interpreter started the way a user starts it from a clone."""

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOBS = ["train_tokenizer", "pretrain", "finetune", "evaluate_model", "build_variant", "push_to_hub", "convert",
        "export", "benchmark", "quickstart", "length_extrapolation", "compare_pretraining"]


def test_console_scripts_name_the_launcher_modules():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"briskbert-train-tokenizer", "briskbert-pretrain", "briskbert-finetune",
                            "briskbert-evaluate", "briskbert-build-variant", "briskbert-push-to-hub",
                            "briskbert-convert", "briskbert-export", "briskbert-benchmark"}
    for target in scripts.values():
        module, function = target.split(":")
        assert function == "main" and module.startswith("briskbert.scripts.")
        assert (REPO / "scripts" / f"{module.rsplit('.', 1)[1]}.py").is_file(), target


def test_every_launcher_runs_from_the_clone_as_a_plain_script(tmp_path):
    # started all at once: each pays its own imports; together they take a few seconds of the 2 cores
    children = {job: subprocess.Popen([sys.executable, str(REPO / "scripts" / f"{job}.py"), "--help"], cwd=tmp_path,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for job in JOBS}
    for job, child in children.items():
        stdout, stderr = child.communicate(timeout=300)
        assert child.returncode == 0, f"scripts/{job}.py --help exited {child.returncode}:\n{stderr[-3000:]}"
        assert "usage:" in stdout, job
