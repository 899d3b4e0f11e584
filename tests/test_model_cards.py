"""Model cards rendered from a real pretraining run's records: Hub-valid front matter, model-index equal to the
evaluation results JSON, license from the training data, and a missing results file giving a warning."""

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from huggingface_hub import ModelCard, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results

from briskbert.trainers.hub.model_card import find_records, render_card

from conftest import REPO

RESULTS = {
    "model": "runs/tiny/final", "revision": None, "created": "2025-01-01T00:00:00+00:00", "seeds": [1, 2, 3],
    "tasks": {
        "sst2": {"dataset": "nyu-mll/glue", "config": "sst2", "split": "validation", "task_type": "classification",
                 "main_metric": "accuracy", "metrics": {"accuracy": {"mean": 0.81, "std": 0.012,
                                                                     "values": [0.8, 0.81, 0.822]}},
                 "seeds": [1, 2, 3], "hyperparameters": {"learning_rate": 5e-5}, "train_seconds": 12.5,
                 "a_field_from_the_future": {"ignored": True}},
        "mrpc": {"dataset": "nyu-mll/glue", "config": "mrpc", "split": "validation", "task_type": "classification",
                 "main_metric": "f1", "metrics": {"f1": {"mean": 0.7, "std": 0.03, "values": [0.67, 0.7, 0.73]},
                                                  "accuracy": {"mean": 0.6, "std": 0.02, "values": [0.58, 0.6, 0.62]}},
                 "seeds": [1, 2, 3], "hyperparameters": {}, "train_seconds": 3.0},
    },
    "glue_average": 0.7, "skipped": {"qqp": "no data"},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real 4-step tiny pretraining run, its evaluation results and its length-extrapolation record."""
    out = tmp_path_factory.mktemp("card_run") / "tiny"
    subprocess.run([sys.executable, "scripts/pretrain.py", "--config", "hub_configs/tiny-cpu.yaml", "--output-dir",
                    str(out), "--max-steps", "4"], cwd=REPO, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    (out / "results.eval.json").write_text(json.dumps(RESULTS))
    subprocess.run([sys.executable, "scripts/length_extrapolation.py", "--model", str(out / "final"), "--lengths",
                    "128", "256", "--tokens", "508"], cwd=REPO, check=True, capture_output=True)
    return out


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_base_card_front_matter_and_model_index_match_the_records(run, tmp_path):
    card = render_card(find_records(run, results=run / "results.eval.json"), "org/briskbert-tiny")
    text = str(card)
    meta = front_matter(text)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "fill-mask"
    assert meta["language"] == ["en"] and meta["license"] == "apache-2.0"  # data/corpus/en: public-domain text
    assert "briskbert" in meta["tags"] and "base_model" not in meta
    assert meta["datasets"] == ["nyu-mll/glue"]
    # the Hub's own parser reads it back, eval results included
    (tmp_path / "README.md").write_text(text)
    assert metadata_load(tmp_path / "README.md") == meta
    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.eval_results == card.data.eval_results
    name, results = model_index_to_eval_results(meta["model-index"])
    assert name == "briskbert-tiny"
    expected = {(task, metric, entry["dataset"], entry["config"], entry["split"], value["mean"])
                for task, entry in RESULTS["tasks"].items() for metric, value in entry["metrics"].items()}
    got = {(r.task_name, r.metric_type, r.dataset_type, r.dataset_config, r.dataset_split, r.metric_value)
           for r in results}
    assert got == expected
    assert all(r.task_type == "text-classification" for r in results)

    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "final" / "config.json").read_text())
    body = text.split("---\n", 2)[2]
    assert f"| layers | {config['num_hidden_layers']} |" in body and f"| hidden size | {config['hidden_size']} |" in body
    assert "ALiBi" in body and "GeGLU" in body and f"{summary['parameters'] / 1e6:.1f}M" in body
    assert f"| tokens seen | {summary['tokens_seen']:,} |" in body and f"| optimizer steps | {summary['steps']} |" in body
    assert "0.8100 ± 0.0120 | 3 |" in body and "GLUE average (WNLI excluded): 70.0" in body
    extrapolation = json.loads((run / "final" / "length_extrapolation.json").read_text())
    for length in ("128", "256"):
        assert f"| {length} | {extrapolation['lengths'][length]['rows']} | " \
               f"{extrapolation['lengths'][length]['loss']:.3f} |" in body
    assert "trust_remote_code=True" in body and 'pipeline("fill-mask"' in body
    assert "`data/corpus/en/us_inaugural_addresses.txt` | US public domain" in body


def test_missing_results_file_gives_a_card_without_results_and_a_warning(run, tmp_path):
    with pytest.warns(UserWarning, match="missing or not an evaluation results JSON"):
        records = find_records(run / "final", results=tmp_path / "nope.json")
    text = str(render_card(records, "org/briskbert-tiny"))
    assert "model-index" not in front_matter(text)
    assert "No evaluation results were given" in text


def test_non_commercial_data_gives_a_non_commercial_card(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints", "*.safetensors"))
    config = json.loads((copy / "config.json").read_text())
    config["train_data"] = ["/elsewhere/data/corpus/tunisian/tarc_arabizi_sentences.txt", "data/corpus/en"]
    (copy / "config.json").write_text(json.dumps(config))
    meta = front_matter(str(render_card(find_records(copy), "org/briskbert-tunisian")))
    assert meta["license"] == "cc-by-nc-sa-4.0" and meta["language"] == ["aeb", "en"]
    config["train_data"] = ["my_scraped_text.txt"]  # unknown terms: "other", never a permissive guess
    (copy / "config.json").write_text(json.dumps(config))
    meta = front_matter(str(render_card(find_records(copy), "org/briskbert-x")))
    assert meta["license"] == "other" and meta["license_name"] == "training-data-terms"


def test_domain_variant_names_its_base_model(run, tmp_path):
    copy = tmp_path / "domain"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints"))
    summary = json.loads((copy / "summary.json").read_text())
    (copy / "summary.json").write_text(json.dumps({**summary, "init_from": "org/briskbert-tiny"}))
    records = find_records(copy)
    assert records.kind == "domain"
    text = str(render_card(records, "org/briskbert-tiny-legal"))
    meta = front_matter(text)
    assert meta["base_model"] == "org/briskbert-tiny" and "domain-adaptation" in meta["tags"]
    assert "A domain variant of [org/briskbert-tiny](https://huggingface.co/org/briskbert-tiny)" in text


def test_fine_tuned_card_from_the_fine_tuning_run(tmp_path, tokenizer):
    from briskbert import BriskBertConfig, BriskBertForSequenceClassification

    run = tmp_path / "wic"
    model = BriskBertForSequenceClassification(BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer),
                                                                           num_labels=2))
    model.save_pretrained(run / "final")
    tokenizer.save_pretrained(run / "final")
    (run / "results.json").write_text(json.dumps({
        "model": "org/briskbert-tiny", "task": "wic", "task_type": "classification", "dataset": "aps/super_glue",
        "dataset_config": "wic", "seed": 3, "main_metric": "accuracy", "train_examples": 100, "steps": 10,
        "best_step": 8, "train_seconds": 4.2, "num_processes": 1, "device": "cpu", "mixed_precision": "no",
        "eval": {"__task__": {"split": "validation", "examples": 50, "metrics": {"accuracy": 0.56}}},
        "hyperparameters": {"learning_rate": 1e-4}}))
    records = find_records(run / "final")
    assert records.kind == "finetuned"
    meta = front_matter(str(render_card(records, "org/briskbert-tiny-wic")))
    assert meta["pipeline_tag"] == "text-classification" and meta["base_model"] == "org/briskbert-tiny"
    assert meta["license"] == "cc-by-nc-4.0"  # WiC is CC BY-NC
    _, results = model_index_to_eval_results(meta["model-index"])
    assert [(r.task_name, r.dataset_type, r.dataset_config, r.metric_type, r.metric_value) for r in results] == \
           [("wic", "aps/super_glue", "wic", "accuracy", 0.56)]
