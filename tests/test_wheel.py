"""BriskBERT as `pip install briskbert` gives it: a wheel built from the repo's own files, installed into a fresh
virtual environment outside the source tree, runs its console scripts from another directory with no access to the
repo: pretraining from a bundled recipe on a text file, fine-tuning with the task's own recipe, and a dry-run push
that renders the model card from the packaged templates.

The environment gets the wheel alone (`--no-deps`); its dependencies (torch, transformers, ...) come from the test's
own environment through a `.pth` line naming that site-packages folder. A plain path line adds the folder without
running the `.pth` files inside it, so the development install's import hook (which maps `briskbert` to this
checkout) is not installed in the fresh environment: every `briskbert` module there comes from the wheel, which the
child processes check.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from task_data import write_task

REPO = Path(__file__).resolve().parents[1]
# what a wheel must hold for the launchers to work with no clone around
PACKAGED = ["briskbert/scripts/pretrain.py", "briskbert/trainers/pretraining/loop.py", "briskbert/modeling/heads.py",
            "briskbert/hub_configs/tiny-cpu.yaml", "briskbert/hub_configs/tasks/sst2.yaml",
            "briskbert/hub_configs/variants/bio.yaml", "briskbert/hub_configs/accelerate/cpu-2proc.yaml",
            "briskbert/model_cards/base.md", "briskbert/model_cards/_usage.md", "briskbert/data/tokenizer/tokenizer.json",
            "briskbert/data/glue/sst2/validation.jsonl", "briskbert/metrics/glue.py"]
CONSOLE_SCRIPTS = ["briskbert-train-tokenizer", "briskbert-prepare-data", "briskbert-pretrain", "briskbert-finetune", "briskbert-evaluate",
                   "briskbert-build-variant", "briskbert-push-to-hub", "briskbert-convert", "briskbert-export",
                   "briskbert-benchmark", "briskbert-embed"]


def source_files() -> list[str]:
    """The files a clean clone has: git's tracked and not-ignored ones (a tree without git: all but build output)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True)
    if listed.returncode == 0:
        return [name for name in listed.stdout.splitlines() if (REPO / name).is_file()]
    skip = {".git", "outputs", "runs", "build", "dist", ".venv", "__pycache__", ".pytest_cache"}
    return [str(p.relative_to(REPO)) for p in REPO.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(REPO).parts) and ".egg-info" not in str(p)]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    for name in source_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(root / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-4000:]
    (wheel,) = (root / "dist").glob("briskbert-*.whl")

    environment = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(environment)], check=True)
    python = environment / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                                str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-4000:]
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    dependencies = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "dependencies.pth").write_text("".join(f"{folder}\n" for folder in sorted(dependencies)))

    work = root / "elsewhere"  # not the repo, not above it
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{environment / 'bin'}{os.pathsep}{env.get('PATH', '')}", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="2",
               HF_DATASETS_CACHE=str(root / "datasets_cache"), HF_MODULES_CACHE=str(root / "modules_cache"))
    return {"wheel": wheel, "bin": environment / "bin", "python": python, "site": Path(site), "work": work, "env": env,
            "source": source}


def run(venv: dict, *command: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(venv["bin"] / command[0]), *command[1:]], cwd=venv["work"], env=venv["env"],
                            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{command[0]} exited {result.returncode}\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-5000:]}"
    return result


def test_the_wheel_holds_the_launchers_recipes_templates_and_console_scripts(venv):
    names = set(zipfile.ZipFile(venv["wheel"]).namelist())
    missing = [name for name in PACKAGED if name not in names]
    assert not missing, f"the wheel lacks {missing}"
    assert not [name for name in names if name.startswith(("tests/", "briskbert/data/corpus/german"))]
    for script in CONSOLE_SCRIPTS:
        assert (venv["bin"] / script).is_file(), script
    # the checkout's own top-level folders (modeling/, trainers/, scripts/) must not be importable there
    probe = ("import briskbert, importlib.util, json; from briskbert.trainers.resources import recipe_path; "
             "print(json.dumps([briskbert.__file__, str(recipe_path('tiny-cpu')), "
             "[name for name in ('modeling', 'trainers', 'scripts') if importlib.util.find_spec(name)]]))")
    where = subprocess.run([str(venv["python"]), "-c", probe], cwd=venv["work"], env=venv["env"],
                           capture_output=True, text=True, check=True).stdout
    module, recipe, checkout_folders = json.loads(where)
    assert Path(module).is_relative_to(venv["site"]) and Path(recipe).is_relative_to(venv["site"]), where
    assert not checkout_folders, f"the fresh environment sees the checkout's {checkout_folders}"


def test_a_clone_run_from_its_root_imports_as_itself_beside_an_installed_wheel(venv):
    """From a clone's root, Python finds the clone's briskbert/ folder before the installed wheel; the clone's other
    folders (modeling/, trainers/, scripts/) must then be found too, not fail as a half-imported package."""
    probe = ("import json, briskbert, briskbert.modeling, briskbert.trainers.pretraining.loop as loop; "
             "print(json.dumps([briskbert.__file__, briskbert.modeling.__file__, loop.__file__]))")
    result = subprocess.run([str(venv["python"]), "-c", probe], cwd=venv["source"], env=venv["env"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    files = [Path(name) for name in json.loads(result.stdout.splitlines()[-1])]
    assert all(name.is_relative_to(venv["source"]) for name in files), files  # the checkout's code, consistently
    launched = subprocess.run([str(venv["python"]), "-m", "briskbert.scripts.pretrain", "--help"], cwd=venv["source"],
                              env=venv["env"], capture_output=True, text=True, timeout=300)
    assert launched.returncode == 0 and "--max-steps" in launched.stdout, launched.stderr[-3000:]


def test_pretrain_finetune_and_push_from_the_installed_package(venv):
    work = venv["work"]
    lines = (REPO / "data" / "corpus" / "en" / "us_inaugural_addresses.txt").read_text().splitlines()[:400]
    (work / "my_corpus.txt").write_text("\n".join(lines) + "\n")
    write_task(work / "my_tasks", "sst2", n_train=16, n_validation=16)

    # 1. the user's own text file, prepared once with the bundled tokenizer, then a bundled recipe by name on it
    run(venv, "briskbert-prepare-data", "--train-data", "my_corpus.txt", "--max-seq-length", "64", "--output",
        "prepared")
    run(venv, "briskbert-pretrain", "--config", "tiny-cpu", "--train-data", "prepared", "--max-steps", "3",
        "--max-seq-length", "64", "--eval-rows", "4", "--eval-every", "3", "--log-every", "1", "--save-every", "3",
        "--peak-tflops", "1", "--output-dir", "pretrained")
    summary = json.loads((work / "pretrained" / "summary.json").read_text())
    assert summary["steps"] == 3 and (work / "pretrained" / "final" / "modeling_briskbert.py").is_file()

    # 2. the task's own recipe (hub_configs/tasks/sst2.yaml: learning rate 3e-5, not the dataclass's 2e-5)
    run(venv, "briskbert-finetune", "--model", "pretrained/final", "--task", "sst2", "--data-dir", "my_tasks",
        "--max-steps", "2", "--batch-size", "8", "--output-dir", "finetuned")
    results = json.loads((work / "finetuned" / "results.json").read_text())
    assert results["hyperparameters"]["learning_rate"] == 3e-5
    assert 0 <= results["eval"]["sst2"]["metrics"]["accuracy"] <= 1 and results["steps"] == 2

    # 3. the pretrained model embeds the user's text file in int8 (quantize calibrates on that text)
    embedded = run(venv, "briskbert-embed", "--model", "pretrained/final", "--input", "my_corpus.txt", "--output",
                   "embeddings.npy", "--dtype", "int8", "--progress", "false")
    assert "int8" in embedded.stdout and (work / "embeddings.npy").is_file()

    # 4. the card, from the packaged templates and the run's own records
    pushed = run(venv, "briskbert-push-to-hub", "--model", "pretrained", "--repo-id", "someone/briskbert-tiny",
                 "--dry-run")
    card = (work / "pretrained" / "final" / "README.md").read_text()
    assert "--- README.md (base card) ---" in pushed.stdout and "nothing was uploaded" in pushed.stdout
    assert "someone/briskbert-tiny" in card and "trust_remote_code=True" in card and "tokens seen" in card
