"""The README's main job and the typed recipe parser it runs on."""

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from briskbert.trainers.config import parse_config

REPO = Path(__file__).resolve().parents[1]


def test_quickstart_runs_end_to_end_and_reloads_without_briskbert(tmp_path):
    output_dir = tmp_path / "quickstart"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "quickstart.py"), "--pretrain_steps", "12", "--output_dir",
         str(output_dir)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "quickstart OK" in result.stdout
    assert "loaded transformers_modules." in result.stdout
    assert "pretrained 2.1M parameters" in result.stdout and "real tokens/s)" in result.stdout
    # the tiny model knows word frequencies only: none of its guesses reach the screen as if they were answers
    assert "-> [" not in result.stdout
    tiny = output_dir / "pretrain" / "final"
    for name in ("model.safetensors", "config.json", "modeling_briskbert.py", "tokenizer.json"):
        assert (tiny / name).is_file(), name
    assert json.loads((output_dir / "pretrain" / "summary.json").read_text())["steps"] == 12
    # the model the user judges: the shipped BERT converted exactly (the converter checked it), then fine-tuned
    converted = output_dir / "briskbert-from-bert"
    assert json.loads((converted / "config.json").read_text())["architectures"] == ["BriskBertModel"]
    assert "max abs difference" in result.stdout
    card = (converted / "README.md").read_text()
    assert "trust_remote_code=True" in card and "model-index" in card and "sst2" in card.lower()
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in card
    # always answering "positive" scores 0.56 on the 2,000 validation rows; one epoch of the 8,000 training rows
    # measured 0.883 +- 0.004 over 3 seeds (docs/finetuning-results.md): the model must clear 0.85
    sst2 = json.loads((output_dir / "results.json").read_text())["tasks"]["sst2"]
    assert sst2["eval_examples"] == 2000 and sst2["metrics"]["accuracy"]["mean"] >= 0.85
    assert "(always answering the most frequent label: 0.56" in result.stdout
    assert "== summary" in result.stdout and str(converted) in result.stdout
    # all-MiniLM-L6-v2 has no MLM head, and the tiny model's guesses would read as nonsense: no fill-mask is shown
    assert "fill-mask:  none shown: all-MiniLM-L6-v2 has no MLM head" in result.stdout
    assert (output_dir / "briskbert.onnx").is_file()


def test_fill_mask_comes_from_the_converted_bert_when_its_checkpoint_has_an_mlm_head(tmp_path, tokenizer):
    """A BertForMaskedLM keeps its head through the conversion, so the summary shows the converted model's own
    guesses, the same as the BERT's; a bare BertModel (all-MiniLM-L6-v2) has none to show."""
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForMaskedLM, BertModel

    from briskbert.trainers.conversion.convert import convert
    from briskbert.trainers.inference.fill_mask import fill_mask
    from briskbert.trainers.quickstart import PROBE, converted_fill_mask

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    for name, model in (("mlm", BertForMaskedLM(config).eval()), ("encoder", BertModel(config).eval())):
        model.save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
        convert("bert", str(tmp_path / name), tmp_path / f"{name}-converted")
    guesses = converted_fill_mask(tmp_path / "mlm-converted")
    assert guesses == fill_mask(BertForMaskedLM.from_pretrained(tmp_path / "mlm").eval(), tokenizer, PROBE)
    assert converted_fill_mask(tmp_path / "encoder-converted") is None
    # the quickstart's next steps take that folder as they take a bare encoder: a task head on the same encoder
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path / "mlm-converted", num_labels=2)
    assert type(classifier).__name__ == "BriskBertForSequenceClassification"


@dataclass
class Recipe:
    preset: str = "mini"
    steps: int = 10
    learning_rate: float = 1e-3
    compile: bool = False
    push_to_hub: str | None = None
    train_data: list[str] = field(default_factory=lambda: ["data/corpus/en"])


def test_recipe_yaml_then_command_line_overrides(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("preset: small\nsteps: 20\nlearning_rate: 1\n")
    config = parse_config(Recipe, ["--config", str(recipe), "--steps", "30"])
    assert config == Recipe(preset="small", steps=30, learning_rate=1.0, compile=False)
    assert parse_config(Recipe, []) == Recipe()
    recipe.write_text("push_to_hub: org/name\ntrain_data: [a.txt, b.txt]\nlearning_rate: 5e-4\n")  # 5e-4: a YAML str
    expected = Recipe(push_to_hub="org/name", train_data=["a.txt", "b.txt"], learning_rate=5e-4)
    assert parse_config(Recipe, ["--config", str(recipe)]) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("presett: small\n", r"unknown field\(s\) \['presett'\]"),
        ("steps: many\n", "field 'steps' must be int"),
        ("steps: true\n", "field 'steps' must be int"),
        ("push_to_hub: true\n", "field 'push_to_hub' must be str or None, got True"),
        ("push_to_hub: 5\n", "field 'push_to_hub' must be str or None, got 5"),
        ("train_data: corpus.txt\n", "field 'train_data' must be a list of str"),
        ("learning_rate: fast\n", "field 'learning_rate' must be float"),
        ("- preset\n", "must be a YAML mapping"),
    ],
)
def test_bad_recipes_name_the_field(tmp_path, text, message):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    with pytest.raises(SystemExit, match=message):
        parse_config(Recipe, ["--config", str(recipe)])


@pytest.mark.parametrize("config_class", ["EmbedConfig", "BenchmarkConfig"])
def test_max_length_is_max_seq_length_and_the_old_name_still_works_with_a_warning(config_class, tmp_path):
    """One name per concept: the embed and benchmark configs say max_seq_length, as pretraining and fine-tuning do;
    the old max_length is accepted for one version, as a flag or in a recipe, and warned."""
    from briskbert.trainers.inference.embed import EmbedConfig
    from briskbert.trainers.speed.benchmark import BenchmarkConfig

    config_class = {"EmbedConfig": EmbedConfig, "BenchmarkConfig": BenchmarkConfig}[config_class]
    required = ["--model", "m", "--input", "in.txt", "--output", "out.npy"] if config_class is EmbedConfig else []
    expected = parse_config(config_class, [*required, "--max-seq-length", "64"])
    assert expected.max_seq_length == 64
    for old in (["--max-length", "64"], ["--max_length", "64"], ["--max-length=64"]):
        with pytest.warns(FutureWarning, match="is now called --max-seq-length"):
            assert parse_config(config_class, [*required, *old]) == expected
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("max_length: 64\n")
    with pytest.warns(FutureWarning, match="field 'max_length' is now called 'max_seq_length'"):
        assert parse_config(config_class, ["--config", str(recipe), *required]) == expected


def test_export_takes_the_old_max_length_flag_with_a_warning(monkeypatch, tmp_path):
    from briskbert.scripts import export

    seen = {}

    def record_export(model, export_format, output, max_seq_length):  # what the script hands the exporter
        seen["max_seq_length"] = max_seq_length
        return ("last_hidden_state",), 0.0, (1, max_seq_length)

    monkeypatch.setattr(export, "export_model", record_export)
    with pytest.warns(FutureWarning, match="--max-length is now called --max-seq-length"):
        export.main(["--model", str(tmp_path), "--format", "onnx", "--output", str(tmp_path / "m.onnx"),
                     "--max-length", "96"])
    assert seen == {"max_seq_length": 96}


def test_missing_recipe_and_unknown_flag(tmp_path):
    with pytest.raises(SystemExit, match="neither a YAML file nor a bundled recipe"):
        parse_config(Recipe, ["--config", str(tmp_path / "nope.yaml")])
    with pytest.raises(SystemExit):  # argparse: unrecognized arguments
        parse_config(Recipe, ["--stepz", "3"])


def test_config_takes_a_bundled_recipe_by_name_and_an_unknown_name_lists_them():
    from briskbert.trainers.pretraining.loop import PretrainConfig
    from briskbert.trainers.resources import bundled_recipes, recipe_path

    assert parse_config(PretrainConfig, ["--config", "tiny-cpu"]).preset == "tiny"
    bio = recipe_path("bio", folder="variants")
    assert bio == recipe_path("variants/bio")
    assert bio.resolve() == recipe_path("hub_configs/variants/bio.yaml").resolve()
    assert {"tiny-cpu", "mini", "base", "quickstart", "variants/bio", "tasks/sst2", "accelerate/cpu-2proc"} <= set(
        bundled_recipes())
    with pytest.raises(SystemExit, match=r"No recipe 'tiny-gpu'.*Bundled recipes .*tiny-cpu.*variants/bio"):
        parse_config(PretrainConfig, ["--config", "tiny-gpu"])
