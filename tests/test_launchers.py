"""Every job is an installed module with a console script, and `python scripts/<job>.py` from a clone still runs it.

Run as a file, a launcher's folder comes first on the import path, so a launcher named like a library (as
scripts/evaluate.py once was, standing in for `evaluate`) would break every import of that library: no launcher may
share its name with an importable module. The tests of each job start the launchers the way users do (console
scripts, `accelerate launch -m`, and `python scripts/<job>.py` for pretrain, quickstart and build_variant); here
every launcher is checked to be a runnable file, and the harness, once named evaluate.py, runs as one.
"""

import ast
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(path.stem for path in (REPO / "scripts").glob("*.py") if path.stem != "__init__")


def test_console_scripts_name_the_launcher_modules():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"briskbert-train-tokenizer", "briskbert-prepare-data", "briskbert-pretrain", "briskbert-finetune",
                            "briskbert-evaluate", "briskbert-build-variant", "briskbert-push-to-hub",
                            "briskbert-convert", "briskbert-export", "briskbert-benchmark", "briskbert-embed"}
    for target in scripts.values():
        module, function = target.split(":")
        assert function == "main" and module.startswith("briskbert.scripts.")
        assert module.rsplit(".", 1)[1] in SCRIPTS, target


def test_no_launcher_shadows_an_importable_module():
    shadowing = [name for name in SCRIPTS if importlib.util.find_spec(name) is not None]
    assert not shadowing, f"scripts/{shadowing[0]}.py, run as a file, would stand in for the module {shadowing[0]}"


def test_every_launcher_is_a_file_python_can_run():
    """What `python scripts/<job>.py` needs: absolute imports only (a file run as a script has no package) and a
    `main()` that the file calls when run."""
    for name in SCRIPTS:
        tree = ast.parse((REPO / "scripts" / f"{name}.py").read_text())
        relative = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
        assert not relative, f"scripts/{name}.py imports relatively: {relative}"
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        guard = [node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
        assert "main" in functions and guard and "main()" in ast.unparse(guard[0]), name


def test_a_launcher_runs_from_the_clone_as_a_plain_script(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate_model.py"), "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "usage:" in result.stdout and "--spread" in result.stdout
