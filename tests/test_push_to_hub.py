"""push_to_hub against a local folder standing in for the Hub: the uploaded tree file by file, no pickles, one
repo and one commit per push, branches; the dry run's listing; the token never shown; refusals; adapters."""

import json
import subprocess
import sys

import pytest
import yaml

from briskbert import BriskBertConfig, BriskBertForMaskedLM, BriskBertForSequenceClassification
from local_hub import LocalHub

from briskbert.trainers.hub.upload import UploadError, plan_upload, push_folder

from conftest import MODEL_CODE_FILES, REPO

SENTINEL = "hf_SENTINELtokenNEVERshown0123456789"
MODEL_FILES = {"config.json", "model.safetensors", *MODEL_CODE_FILES, "tokenizer.json", "tokenizer_config.json",
               "README.md"}


@pytest.fixture
def run(tmp_path, tokenizer):
    """A run folder as briskbert-pretrain leaves it, with pickles and clutter that must not go up."""
    out = tmp_path / "tiny"
    model = BriskBertForMaskedLM(BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer)))
    model.save_pretrained(out / "final")
    tokenizer.save_pretrained(out / "final")
    (out / "summary.json").write_text(json.dumps({"model_type": "briskbert", "preset": "tiny", "init_from": None,
                                                  "parameters": model.num_parameters(), "steps": 4,
                                                  "tokens_seen": 8188, "train_seconds": 1.0, "max_seq_length": 128}))
    (out / "config.json").write_text(json.dumps({"train_data": ["data/corpus/en"], "micro_batch_size": 16}))
    (out / "pretrain").mkdir()
    (out / "pretrain" / "events.out.tfevents.1.host.0").write_bytes(b"tensorboard")
    (out / "checkpoints" / "step_4").mkdir(parents=True)
    (out / "checkpoints" / "step_4" / "events.out.tfevents.2.host.0").write_bytes(b"not this one")
    for pickle in ("pytorch_model.bin", "optimizer.pt", "training_args.bin"):
        (out / "final" / pickle).write_bytes(b"\x80\x04pickle")
    (out / "final" / "notes.txt").write_text("scratch")
    results = {"model": "tiny", "tasks": {"sst2": {
        "dataset": "nyu-mll/glue", "config": "sst2", "split": "validation", "task_type": "classification",
        "main_metric": "accuracy", "metrics": {"accuracy": {"mean": 0.8, "std": 0.01, "values": [0.79, 0.81]}},
        "seeds": [1, 2], "hyperparameters": {"learning_rate": 5e-5, "hub_token": SENTINEL}}}, "glue_average": 0.8}
    (out / "results.json").write_text(json.dumps(results))
    return out


def test_push_to_a_local_hub_uploads_exactly_the_model_files(run, tmp_path):
    hub = LocalHub(tmp_path / "hub")
    plan = push_folder(run, "org/briskbert-tiny", results=run / "results.json", private=True, api=hub,
                       echo=lambda *_: None)
    expected = MODEL_FILES | {"eval_results.json", "runs/pretrain/events.out.tfevents.1.host.0"}
    tree = tmp_path / "hub" / "org" / "briskbert-tiny" / "tree" / "main"
    uploaded = {p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()}
    assert uploaded == expected == set(plan.files)
    for path in expected:  # byte for byte what the folder holds
        assert (tree / path).read_bytes() == plan.files[path].read_bytes(), path
    assert (tree / "README.md").read_text() == plan.card == (run / "final" / "README.md").read_text()
    assert not any(path.endswith((".bin", ".pt")) for path in uploaded)
    assert any("pytorch_model.bin: a pickle file, never uploaded" in message for message in plan.skipped)
    assert json.loads((tmp_path / "hub" / "org" / "briskbert-tiny" / "repo.json").read_text()) == {"private": True}

    # pushing again (and to a branch) adds commits to the same repo, never a second repo
    push_folder(run, "org/briskbert-tiny", results=run / "results.json", api=hub, echo=lambda *_: None)
    push_folder(run, "org/briskbert-tiny", revision="v0.1", api=hub, echo=lambda *_: None)
    commits = json.loads((tmp_path / "hub" / "org" / "briskbert-tiny" / "commits.json").read_text())
    assert [c["branch"] for c in commits] == ["main", "main", "v0.1"]
    assert [p.name for p in (tmp_path / "hub" / "org").iterdir()] == ["briskbert-tiny"]
    branch = tmp_path / "hub" / "org" / "briskbert-tiny" / "tree" / "v0.1"
    assert (branch / "model.safetensors").read_bytes() == (run / "final" / "model.safetensors").read_bytes()


def test_dry_run_lists_files_writes_the_card_and_never_shows_the_token(run):
    env = {**__import__("os").environ, "HF_TOKEN": SENTINEL, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "scripts/push_to_hub.py", "--model", str(run / "final"), "--repo-id",
                             "org/briskbert-tiny", "--results", str(run / "results.json"), "--dry-run"],
                            cwd=REPO, env=env, capture_output=True, text=True, check=True)
    output = result.stdout + result.stderr
    assert SENTINEL not in output
    for path in sorted(run.rglob("*")):
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes() or path.name == "results.json", path
    card = (run / "final" / "README.md").read_text()
    assert "hub_token=***" in card  # the results' hyperparameters held it; the card redacted it
    listed = {}
    for line in result.stdout.splitlines():
        if "\t" in line and line.endswith(" bytes"):
            path, size = line.split("\t")
            listed[path] = int(size.removesuffix(" bytes").replace(",", ""))
    assert set(listed) == MODEL_FILES | {"eval_results.json", "runs/pretrain/events.out.tfevents.1.host.0"}
    assert listed["model.safetensors"] == (run / "final" / "model.safetensors").stat().st_size
    assert listed["README.md"] == len(card.encode())
    assert card in result.stdout and "nothing was uploaded" in result.stdout
    assert yaml.safe_load(card.split("---\n")[1])["license"] == "apache-2.0"


def test_refuses_folders_that_would_not_load(run):
    final = run / "final"
    config = json.loads((final / "config.json").read_text())
    broken = {**config, "auto_map": {k: v for k, v in config["auto_map"].items() if k != "AutoModelForMaskedLM"}}
    (final / "config.json").write_text(json.dumps(broken))
    with pytest.raises(UploadError, match="auto_map names no class for architecture 'BriskBertForMaskedLM'"):
        plan_upload(final, "org/x")
    (final / "config.json").write_text(json.dumps(config))
    code = (final / "unpadding.py").read_text()
    (final / "unpadding.py").unlink()  # imported by modeling_briskbert.py
    with pytest.raises(UploadError, match="unpadding.py"):
        plan_upload(final, "org/x")
    (final / "unpadding.py").write_text(code)
    (final / "model.safetensors").unlink()
    with pytest.raises(UploadError, match="only pickle files"):
        plan_upload(final, "org/x")


def test_adapter_uploads_alone_and_its_card_names_the_base_model(tmp_path, tokenizer):
    from peft import LoraConfig, get_peft_model

    base = BriskBertForSequenceClassification(BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer),
                                                                          num_labels=2))
    base.save_pretrained(tmp_path / "base")
    base = BriskBertForSequenceClassification.from_pretrained(tmp_path / "base")  # as finetune.py loads it
    model = get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["Wqkv", "Wo", "Wi"],
                                            modules_to_save=["classifier"]))
    model.save_pretrained(tmp_path / "run" / "final")
    tokenizer.save_pretrained(tmp_path / "run" / "final")
    hub = LocalHub(tmp_path / "hub")
    with pytest.warns(UserWarning, match="local path"):
        plan_upload(tmp_path / "run" / "final", "org/lora")  # the adapter records a local base: named, not linked
    plan = push_folder(tmp_path / "run" / "final", "org/briskbert-tiny-sst2-lora", base_model="org/briskbert-tiny",
                       api=hub, echo=lambda *_: None)
    assert plan.kind == "adapter"
    tree = tmp_path / "hub" / "org" / "briskbert-tiny-sst2-lora" / "tree" / "main"
    assert {p.name for p in tree.iterdir()} == {"adapter_config.json", "adapter_model.safetensors", "README.md",
                                                "tokenizer.json", "tokenizer_config.json"}
    meta = yaml.safe_load(plan.card.split("---\n")[1])
    assert meta["base_model"] == "org/briskbert-tiny" and meta["library_name"] == "peft"
    assert meta["pipeline_tag"] == "text-classification" and "lora" in meta["tags"]
    assert "A LORA adapter for **[org/briskbert-tiny](https://huggingface.co/org/briskbert-tiny)**" in plan.card
