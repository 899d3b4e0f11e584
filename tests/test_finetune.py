"""scripts/finetune.py on a tiny BriskBERT (and a tiny BERT): a few steps of every task kind, LoRA adapters that
save alone and reload to the same predictions, merged models that load without PEFT or BriskBERT, any PEFT
method from a config file, gradient accumulation, early stopping, and flags that fail with a clear message."""

import json
import subprocess
from pathlib import Path

import pytest
import torch
from briskbert.trainers.finetuning.loop import finetune, finetune_config, load_for_task
from briskbert.trainers.tasks.registry import TASKS
from launchers import accelerate_two_processes, launch_environment
from task_data import write_task
from transformers import BertConfig, BertForMaskedLM

REPO = Path(__file__).resolve().parents[1]
# fast: a few steps of small batches, scored on the first rows
FAST = ["--batch-size", "8", "--eval-batch-size", "16", "--learning-rate", "1e-3", "--log-every", "1"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory, tokenizer) -> Path:
    folder = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for name in ("sst2", "stsb", "copa", "conll2003", "squad"):
        write_task(root, name, n_train=32, n_validation=16)
    return root


def run(model, task, output, data_dir, *args) -> dict:
    config = finetune_config(["--model", str(model), "--task", task, "--output-dir", str(output),
                              "--data-dir", str(data_dir), *FAST, *args])
    return finetune(config)


@pytest.mark.parametrize("task,steps", [("sst2", 4), ("stsb", 4), ("copa", 3), ("conll2003", 4), ("squad", 3)])
def test_each_task_kind_fine_tunes_saves_and_reloads_to_the_same_scores(task, steps, tiny_briskbert, data_dir,
                                                                         tmp_path):
    results = run(tiny_briskbert, task, tmp_path / "run", data_dir, "--max-steps", str(steps))
    assert results["steps"] == steps and results["task_type"] == TASKS[task].kind
    metrics = results["eval"][task]["metrics"]
    assert set(TASKS[task].table_metrics) <= set(metrics)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["eval"] == results["eval"] and saved["hyperparameters"]["total_steps"] == steps
    assert [r["step"] for r in saved["history"]] == [steps]
    final = tmp_path / "run" / "final"
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= {p.name for p in final.iterdir()}
    assert list((tmp_path / "run" / "finetune").glob("events.out.tfevents.*")), "no TensorBoard events"
    # the saved model, scored as loaded (max_steps 0), gives the same scores
    again = run(final, task, tmp_path / "score", data_dir, "--max-steps", "0")
    assert again["eval"][task]["metrics"] == metrics
    assert not (tmp_path / "score" / "final").exists()


def test_lora_saves_the_adapter_alone_and_reloads_to_the_same_predictions(tiny_briskbert, data_dir, tmp_path):
    results = run(tiny_briskbert, "sst2", tmp_path / "lora", data_dir, "--peft", "lora", "--max-steps", "4")
    assert results["peft"]["method"] == "LORA"
    assert results["peft"]["target_modules"] == ["Wi", "Wo", "Wqkv"]  # declared by BriskBERT
    assert results["peft"]["modules_to_save"] == ["classifier"]
    assert results["trainable_parameters"] < results["total_parameters"] / 10
    final = tmp_path / "lora" / "final"
    names = {p.name for p in final.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
    assert "model.safetensors" not in names, "an adapter folder holds the adapter alone"
    again = run(final, "sst2", tmp_path / "score", data_dir, "--max-steps", "0")
    assert again["eval"]["sst2"]["metrics"] == results["eval"]["sst2"]["metrics"]


def test_adapter_reload_and_merge_give_identical_logits(tiny_briskbert, tmp_path, make_batch, sentences,
                                                        run_fresh_python):
    from briskbert.trainers.finetuning.adapters import add_adapter
    from peft import PeftModel

    task = TASKS["sst2"]
    _, model = load_for_task(str(tiny_briskbert), task)
    model = add_adapter(model, "lora", None).eval()
    with torch.no_grad():  # LoRA's B starts at zero: move it, and the head, so the adapter is not a no-op
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.05)
    batch = make_batch(sentences[:8])
    with torch.no_grad():
        expected = model(**batch).logits
    model.save_pretrained(tmp_path / "adapter")
    _, base = load_for_task(str(tiny_briskbert), task)
    reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.equal(reloaded(**batch).logits, expected)
    merged = model.merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, expected, atol=1e-5, rtol=0)
    torch.save({"batch": batch, "expected": expected}, tmp_path / "expected.pt")
    # in a fresh interpreter that cannot import briskbert (and never imports peft)
    stdout = run_fresh_python(f"""
        import sys, torch
        from transformers import AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained({str(tmp_path / 'merged')!r},
                                                                   trust_remote_code=True).eval()
        saved = torch.load({str(tmp_path / 'expected.pt')!r})
        with torch.no_grad():
            logits = model(**saved["batch"]).logits
        print(type(model).__name__, "peft" in sys.modules, (logits - saved["expected"]).abs().max().item())
    """, tmp_path)
    name, peft_imported, difference = stdout.split()
    assert name == "BriskBertForSequenceClassification" and peft_imported == "False"
    assert float(difference) <= 1e-5


def test_merge_writes_a_plain_model_and_keeps_the_adapter(tiny_briskbert, data_dir, tmp_path):
    results = run(tiny_briskbert, "conll2003", tmp_path / "run", data_dir, "--peft", "lora", "--merge",
                  "--max-steps", "3")
    assert results["merged"]
    final, adapter = tmp_path / "run" / "final", tmp_path / "run" / "adapter"
    assert {"model.safetensors", "modeling_briskbert.py"} <= {p.name for p in final.iterdir()}
    assert "adapter_config.json" not in {p.name for p in final.iterdir()}
    assert (adapter / "adapter_model.safetensors").is_file()
    for model in (final, adapter):
        again = run(model, "conll2003", tmp_path / f"score_{model.name}", data_dir, "--max-steps", "0")
        assert again["eval"]["conll2003"]["metrics"] == pytest.approx(results["eval"]["conll2003"]["metrics"])


def test_any_bert_checkpoint_works_with_lora_on_its_own_targets(tiny_bert, data_dir, tmp_path):
    results = run(tiny_bert, "stsb", tmp_path / "bert", data_dir, "--peft", "lora", "--max-steps", "3")
    assert results["peft"]["target_modules"] == ["dense", "key", "query", "value"]
    assert results["peft"]["modules_to_save"] == ["classifier"]
    again = run(tmp_path / "bert" / "final", "stsb", tmp_path / "score", data_dir, "--max-steps", "0")
    assert again["eval"]["stsb"]["metrics"] == results["eval"]["stsb"]["metrics"]


def test_other_peft_methods_come_from_a_config_file(tiny_briskbert, data_dir, tmp_path):
    config = tmp_path / "ia3.json"
    config.write_text(json.dumps({"peft_type": "IA3", "target_modules": ["Wqkv", "Wi"], "feedforward_modules": ["Wi"]}))
    results = run(tiny_briskbert, "sst2", tmp_path / "ia3", data_dir, "--peft-config", str(config), "--max-steps", "2")
    assert results["peft"]["method"] == "IA3" and results["peft"]["modules_to_save"] == ["classifier"]
    assert (tmp_path / "ia3" / "final" / "adapter_config.json").is_file()


def test_gradient_accumulation_counts_optimizer_steps_and_early_stopping_stops(tiny_briskbert, data_dir, tmp_path):
    # 32 rows, micro-batches of 8, 2 per step: 2 optimizer steps per epoch
    results = run(tiny_briskbert, "sst2", tmp_path / "accumulate", data_dir, "--gradient-accumulation-steps", "2",
                  "--num-train-epochs", "1")
    assert results["steps"] == 2 and [r["step"] for r in results["history"]] == [2]
    # nothing can improve with a zero learning rate: the second evaluation is stale, and patience 1 stops there
    results = run(tiny_briskbert, "sst2", tmp_path / "early", data_dir, "--learning-rate", "0", "--eval-every", "1",
                  "--early-stopping-patience", "1", "--max-steps", "20")
    assert results["stopped_early"] and results["steps"] == 2 and results["best_step"] == 1


def test_bad_flags_name_the_fix(tmp_path):
    with pytest.raises(SystemExit, match="Unknown task 'sst3'"):
        finetune_config(["--model", "m", "--task", "sst3"])
    with pytest.raises(SystemExit, match="--merge merges an adapter: add --peft lora"):
        finetune_config(["--model", "m", "--task", "sst2", "--merge"])
    with pytest.raises(SystemExit, match="--peft must be 'lora'"):
        finetune_config(["--model", "m", "--task", "sst2", "--peft", "ia3"])
    with pytest.raises(SystemExit, match="--model is required"):
        finetune_config(["--task", "sst2"])
    assert finetune_config(["--model", "m", "--task", "squad"]).max_seq_length == 384  # the task's own defaults
    assert finetune_config(["--model", "m", "--task", "sst2", "--config", "tasks/squad"]).max_seq_length == 384
    assert finetune_config(["--model", "m", "--task", "squad", "--max-seq-length", "256"]).max_seq_length == 256


def test_the_launcher_runs_under_accelerate_on_two_processes(tiny_briskbert, data_dir, tmp_path):
    """`accelerate launch -m briskbert.scripts.finetune` as users run it, on 2 CPU processes: NER scores gathered from both
    processes (batches padded across processes) equal the single-process scores of the same model."""
    single = run(tiny_briskbert, "conll2003", tmp_path / "one", data_dir, "--max-steps", "0")
    command = accelerate_two_processes(
        "-m", "briskbert.scripts.finetune", "--model", str(tiny_briskbert), "--task", "conll2003",
        "--output-dir", str(tmp_path / "two"), "--data-dir", str(data_dir), "--max-steps", "0",
        "--eval-batch-size", "5")
    result = subprocess.run(command, cwd=tmp_path, env=launch_environment(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["num_processes"] == 2
    assert two["eval"]["conll2003"]["metrics"] == pytest.approx(single["eval"]["conll2003"]["metrics"], abs=1e-6)


def test_length_grouped_batches_cover_every_example_once_per_epoch_with_little_padding(tiny_briskbert, data_dir,
                                                                                     tmp_path):
    from briskbert.trainers.tasks.features import LengthGroupedBatches

    lengths = [(i * 37) % 101 + 1 for i in range(1000)]
    sampler = LengthGroupedBatches(lengths, batch_size=10, seed=3, window=5)
    first, second = list(sampler), list(sampler)
    for epoch in (first, second):
        assert sorted(i for batch in epoch for i in batch) == list(range(1000)) and len(epoch) == len(sampler) == 100
    assert first != second, "each epoch has its own order"
    padded = sum(len(b) * max(lengths[i] for i in b) for b in first)
    random_batches = [list(range(i, i + 10)) for i in range(0, 1000, 10)]
    assert padded < 0.7 * sum(len(b) * max(lengths[i] for i in b) for b in random_batches)
    results = run(tiny_briskbert, "sst2", tmp_path / "grouped", data_dir, "--group-by-length", "--max-steps", "4")
    assert results["steps"] == 4 and results["hyperparameters"]["group_by_length"] is True


@pytest.mark.parametrize("task", ["sst2", "conll2003"])
def test_a_fine_tuned_model_is_scored_in_int8(task, tiny_briskbert, data_dir, tmp_path):
    trained = run(tiny_briskbert, task, tmp_path / "run", data_dir, "--max-steps", "4")
    int8 = run(tmp_path / "run" / "final", task, tmp_path / "int8", data_dir, "--max-steps", "0", "--int8", "true")
    assert int8["int8"] is True and trained["int8"] is False
    main = TASKS[task].main_metric
    assert abs(int8["eval"][task]["metrics"][main] - trained["eval"][task]["metrics"][main]) <= 0.2
    with pytest.raises(SystemExit, match="--max-steps 0"):
        run(tmp_path / "run" / "final", task, tmp_path / "bad", data_dir, "--max-steps", "2", "--int8", "true")
