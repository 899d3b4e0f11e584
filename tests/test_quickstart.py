"""The README's main job and the typed recipe parser it runs on."""

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from briskbert.trainers.config import parse_config

REPO = Path(__file__).resolve().parents[1]


def test_quickstart_runs_end_to_end_and_reloads_without_briskbert(tmp_path):
    output_dir = tmp_path / "quickstart"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "quickstart.py"), "--pretrain_steps", "12", "--finetune_steps", "6",
         "--eval_samples", "64", "--output_dir", str(output_dir)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "quickstart OK" in result.stdout
    assert "loaded transformers_modules." in result.stdout
    assert "pretrained 2.1M parameters" in result.stdout and "-> [" in result.stdout
    saved = output_dir / "pretrain" / "final"
    for name in ("model.safetensors", "config.json", "modeling_briskbert.py", "tokenizer.json", "README.md"):
        assert (saved / name).is_file(), name
    assert json.loads((output_dir / "pretrain" / "summary.json").read_text())["steps"] == 12
    card = (saved / "README.md").read_text()
    assert "trust_remote_code=True" in card and "model-index" in card and "sst2" in card.lower()
    results = json.loads((output_dir / "results.json").read_text())
    assert 0.0 <= results["tasks"]["sst2"]["metrics"]["accuracy"]["mean"] <= 1.0
    assert (output_dir / "briskbert.onnx").is_file()


@dataclass
class Recipe:
    preset: str = "mini"
    steps: int = 10
    learning_rate: float = 1e-3
    compile: bool = False


def test_recipe_yaml_then_command_line_overrides(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("preset: small\nsteps: 20\nlearning_rate: 1\n")
    config = parse_config(Recipe, ["--config", str(recipe), "--steps", "30"])
    assert config == Recipe(preset="small", steps=30, learning_rate=1.0, compile=False)
    assert parse_config(Recipe, []) == Recipe()


@pytest.mark.parametrize(
    "text, message",
    [
        ("presett: small\n", r"unknown field\(s\) \['presett'\]"),
        ("steps: many\n", "field 'steps' must be int"),
        ("steps: true\n", "field 'steps' must be int"),
        ("- preset\n", "must be a YAML mapping"),
    ],
)
def test_bad_recipes_name_the_field(tmp_path, text, message):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    with pytest.raises(SystemExit, match=message):
        parse_config(Recipe, ["--config", str(recipe)])


def test_missing_recipe_and_unknown_flag(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        parse_config(Recipe, ["--config", str(tmp_path / "nope.yaml")])
    with pytest.raises(SystemExit):  # argparse: unrecognized arguments
        parse_config(Recipe, ["--stepz", "3"])
