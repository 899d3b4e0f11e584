"""The domain-variant kit: recipes load and name real tasks, stages skip when finished and redo when
half-written, and (with ../shared/data) a tiny Tunisian variant runs from corpus to card."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from briskbert.trainers.tasks import TASKS
from briskbert.trainers.variants import STAGES, Stages, VariantRecipe

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RECIPES = sorted((REPO / "hub_configs" / "variants").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipes_load_and_name_registered_tasks(path):
    recipe = VariantRecipe.load(path)
    assert recipe.variant == path.stem
    assert recipe.tasks and all(task in TASKS for task in recipe.tasks), recipe.tasks
    assert recipe.license and recipe.license_note
    if recipe.variant in ("german", "tunisian", "legal"):
        assert "non-commercial" in recipe.license_note  # their corpora carry NC licenses
    if recipe.variant == "german":
        assert recipe.cased and recipe.strip_accents is False


def test_recipe_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("variant: x\ncorpus: [a]\ntasks: [sst2]\nvocab: 3\n")
    with pytest.raises(SystemExit, match=r"unknown field\(s\) \['vocab'\]"):
        VariantRecipe.load(bad)
    bad.write_text("variant: x\ncorpus: [a]\n")
    with pytest.raises(SystemExit, match=r"missing field\(s\) \['tasks'\]"):
        VariantRecipe.load(bad)


def test_stages_skip_finished_and_forget_from_a_stage(tmp_path):
    stages = Stages(tmp_path)
    assert not stages.done("corpus")
    stages.finish("corpus", {"files": []})
    stages.finish("tokenizer", {})
    assert stages.done("corpus") and stages.done("tokenizer")
    assert not list((tmp_path / "stages").glob(".*")), "the marker is renamed into place"
    stages.reset_from("tokenizer")
    assert stages.done("corpus") and not stages.done("tokenizer")
    assert STAGES == ("corpus", "tokenizer", "pretrain", "evaluate", "card")


def test_tiny_tunisian_variant_end_to_end_and_resumes(tmp_path):
    """On the repo's own Tunisian sample (TArC sentences, TSAC sentiment): corpus to card, then a rerun."""
    out = tmp_path / "tunisian"
    command = [sys.executable, str(REPO / "scripts" / "build_variant.py"), "--variant", "tunisian", "--preset", "tiny",
               "--output-dir", str(out), "--data-dir", str(REPO / "data"), "--tasks", "tsac"]
    first = subprocess.run(command + ["--pretrain-args", "--max-steps", "6"], cwd=REPO, capture_output=True,
                           text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-4000:]
    report = json.loads((out / "tokenizer" / "tokenizer_report.json").read_text())
    assert report["vocab_size"] % 64 == 0 and report["pieces_per_word"] < report["general_pieces_per_word"]
    results = json.loads((out / "results.json").read_text())
    assert set(results["tasks"]) == {"tsac"}
    assert (out / "card" / "README.md").is_file()
    # a half-written evaluation (marker gone) is redone; finished stages are skipped
    (out / "stages" / "evaluate.json").unlink()
    (out / "stages" / "card.json").unlink()
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-4000:]
    for stage in ("corpus", "tokenizer", "pretrain"):
        assert f"stage {stage}: finished earlier, skipped" in again.stdout
    assert "stage evaluate: running" in again.stdout and "stage card: running" in again.stdout
