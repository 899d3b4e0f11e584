"""Every job is an installed module with a console script, and `python scripts/<job>.py` from a clone still runs it.

Run as a file, a launcher's folder comes first on the import path, so a launcher named like a library (as
scripts/evaluate.py once was, standing in for `evaluate`) would break every import of that library: no launcher may
share its name with an importable module. The tests of each job start the launchers the way users do (console
scripts, `accelerate launch -m`, and `python scripts/<job>.py` for pretrain, quickstart and build_variant); here
the ones those tests start otherwise answer --help as plain files.
"""

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(path.stem for path in (REPO / "scripts").glob("*.py") if path.stem != "__init__")


def test_console_scripts_name_the_launcher_modules():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"briskbert-train-tokenizer", "briskbert-pretrain", "briskbert-finetune",
                            "briskbert-evaluate", "briskbert-build-variant", "briskbert-push-to-hub",
                            "briskbert-convert", "briskbert-export", "briskbert-benchmark"}
    for target in scripts.values():
        module, function = target.split(":")
        assert function == "main" and module.startswith("briskbert.scripts.")
        assert module.rsplit(".", 1)[1] in SCRIPTS, target


def test_no_launcher_shadows_an_importable_module():
    shadowing = [name for name in SCRIPTS if importlib.util.find_spec(name) is not None]
    assert not shadowing, f"scripts/{shadowing[0]}.py, run as a file, would stand in for the module {shadowing[0]}"


def test_launchers_run_from_the_clone_as_plain_scripts(tmp_path):
    jobs = ["finetune", "evaluate_model", "export"]  # started at once: each pays its own imports
    children = {job: subprocess.Popen([sys.executable, str(REPO / "scripts" / f"{job}.py"), "--help"], cwd=tmp_path,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for job in jobs}
    for job, child in children.items():
        stdout, stderr = child.communicate(timeout=300)
        assert child.returncode == 0, f"scripts/{job}.py --help exited {child.returncode}:\n{stderr[-3000:]}"
        assert "usage:" in stdout, job
