"""The pretraining launcher end to end, in fresh processes as a user runs it (`python scripts/pretrain.py` from the
clone, and under `accelerate launch`): a tiny run writes checkpoints, a
loadable final model, metrics and a summary; gradient accumulation and two processes reproduce the large
single-process batch; kill -9 or SIGTERM, then --resume, reproduce the uninterrupted loss curve; bad
configs fail with messages that name the fix."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from launchers import console_script, launch_environment
from pretrain_runs import REPO, losses, metrics, pretrain, pretrain_command
from safetensors.torch import load_file

from briskbert.scripts.compare_downstream import main as compare_downstream_main
from briskbert.scripts.compare_pretraining import main as compare_pretraining_main
from briskbert.trainers.config import parse_config
from briskbert.trainers.pretraining.loop import PretrainConfig
from briskbert.trainers.pretraining.loop import pretrain as pretrain_loop

def test_tiny_run_writes_checkpoints_final_model_metrics_and_summary(tmp_path, run_fresh_python):
    output = tmp_path / "run"
    pretrain(output, "--max-steps", "8", "--micro-batch-size", "8", "--save-every", "3", "--keep-checkpoints", "2",
             "--log-every", "2", "--eval-every", "3")
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["step_00000006", "step_00000008"]
    records = metrics(output)
    # every log step and every eval step is logged, and the last step always, with its eval
    assert [r["step"] for r in records] == [2, 3, 4, 6, 8]
    assert {"step", "loss", "lr", "tokens_per_s", "mfu", "grad_norm"} <= set(records[0])
    assert [r["step"] for r in records if "eval_loss" in r] == [3, 6, 8]
    assert records[-1]["loss"] < records[0]["loss"]
    summary = json.loads((output / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["tokens_seen"] == records[-1]["tokens_seen"]
    assert 0.9 < summary["packing_efficiency"] <= 1.0
    assert list((output / "pretrain").glob("events.out.tfevents.*")), "TensorBoard events were not written"

    final = output / "final"
    assert {"model.safetensors", "config.json", "modeling_briskbert.py", "tokenizer.json"} <= {p.name for p in final.iterdir()}
    assert not list(final.glob("*.bin")), "weights must be safetensors only"
    stdout = run_fresh_python(f"""
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained({str(final)!r}, trust_remote_code=True)
        model = AutoModelForMaskedLM.from_pretrained({str(final)!r}, trust_remote_code=True).eval()
        batch = tokenizer(["We the people of the [MASK] States."], return_tensors="pt")
        with torch.no_grad():
            logits = model(**batch).logits
        print(type(model).__name__, tuple(logits.shape), bool(torch.isfinite(logits).all()))
    """, tmp_path)
    assert stdout.split()[0] == "BriskBertForMaskedLM" and stdout.strip().endswith("True")


def test_gradient_accumulation_equals_the_large_batch(tmp_path, reference_run):
    """Loss normalised by the masked tokens of the whole accumulated batch: 2 x 8 rows == 1 x 16 rows."""
    output = tmp_path / "accumulated"
    pretrain(output, "--max-steps", "3", "--micro-batch-size", "8", "--gradient-accumulation-steps", "2",
             "--save-every", "100")
    assert losses(output) == pytest.approx(losses(reference_run), rel=1e-5)
    accumulated = load_file(output / "final" / "model.safetensors")
    large = load_file(reference_run / "final" / "model.safetensors")
    for name, tensor in large.items():
        torch.testing.assert_close(accumulated[name], tensor, atol=1e-5, rtol=1e-4)


def test_two_cpu_processes_equal_one_process(tmp_path, reference_run):
    """accelerate launch with 2 processes x 8 rows: each row read by exactly one process, DDP gradients averaged
    with the global masked-token count, so the curve is the single-process 16-row curve."""
    output = tmp_path / "ddp"
    result = pretrain(output, "--max-steps", "3", "--micro-batch-size", "8", "--save-every", "100", processes=2)
    assert json.loads((output / "summary.json").read_text())["num_processes"] == 2, result.stdout[-2000:]
    assert losses(output) == pytest.approx(losses(reference_run), rel=1e-4)
    assert [r["eval_loss"] for r in metrics(output) if "eval_loss" in r] == pytest.approx(
        [r["eval_loss"] for r in metrics(reference_run) if "eval_loss" in r], rel=1e-4)


@pytest.fixture(scope="module")
def head_warmup_run(tmp_path_factory, reference_run) -> Path:
    """Continued pretraining of the reference run's model: 2 steps of the MLM head alone, then 2 of everything,
    every step's state kept."""
    output = tmp_path_factory.mktemp("head_warmup")
    pretrain(output, "--init-from", str(reference_run / "final"), "--max-steps", "4", "--micro-batch-size", "16",
             "--head-warmup-steps", "2", "--head-learning-rate", "3e-3", "--learning-rate", "1e-4",
             "--save-every", "1", "--keep-checkpoints", "4")
    return output


def test_head_warmup_trains_the_head_alone_then_everything(head_warmup_run, reference_run):
    start = load_file(reference_run / "final" / "model.safetensors")
    after_warmup = load_file(head_warmup_run / "checkpoints" / "step_00000002" / "model.safetensors")
    end = load_file(head_warmup_run / "checkpoints" / "step_00000004" / "model.safetensors")
    head = {"head.dense.weight", "head.dense.bias", "head.norm.weight", "head.norm.bias", "decoder.bias"}
    assert head <= set(start)
    for name, tensor in start.items():
        if name in head:
            assert not torch.equal(after_warmup[name], tensor), f"the head's {name} did not train"
        else:  # the encoder, the embeddings and the decoder weight tied to them
            assert torch.equal(after_warmup[name], tensor), f"{name} moved while the encoder was frozen"
    assert not torch.equal(end["model.layers.0.attention.Wqkv.weight"], start["model.layers.0.attention.Wqkv.weight"])
    records = metrics(head_warmup_run)
    assert [r["phase"] for r in records] == ["head", "head", "all", "all"]
    assert [r["lr"] for r in records[:2]] == pytest.approx([3e-3, 3e-3])  # after its one warmup step
    assert records[2]["lr"] == pytest.approx(1e-4)  # the rest warms up over its own first step


def test_head_warmup_on_two_processes_equals_one(tmp_path, head_warmup_run, reference_run):
    """DDP is told that the frozen encoder's parameters get no gradients while the head warms up."""
    output = tmp_path / "ddp"
    pretrain(output, "--init-from", str(reference_run / "final"), "--max-steps", "4", "--micro-batch-size", "8",
             "--head-warmup-steps", "2", "--head-learning-rate", "3e-3", "--learning-rate", "1e-4",
             "--save-every", "100", processes=2)
    assert losses(output) == pytest.approx(losses(head_warmup_run), rel=1e-4)


@pytest.mark.parametrize("stop_signal, data", [
    (signal.SIGKILL, []), (signal.SIGTERM, []), (signal.SIGTERM, ["--streaming"]),
], ids=["kill-9", "sigterm", "sigterm-streaming"])
def test_interrupted_run_resumes_onto_the_same_curve(tmp_path, uninterrupted, stop_signal, data):
    args = ["--max-steps", "40", "--micro-batch-size", "4", "--save-every", "10", "--eval-every", "10", *data]
    reference = uninterrupted(*args)

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(pretrain_command(interrupted, *args), cwd=REPO, env=launch_environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first_checkpoint = interrupted / "checkpoints" / "step_00000010"
    deadline = time.time() + 300
    while not first_checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(stop_signal)
    _, stderr = process.communicate(timeout=120)
    assert not (interrupted / "final").exists(), "the run finished before it could be interrupted"
    if stop_signal == signal.SIGTERM:
        assert process.returncode == 143, stderr[-3000:]
    else:
        assert process.returncode == -signal.SIGKILL
    saved = sorted(p.name for p in (interrupted / "checkpoints").iterdir() if p.name.startswith("step_"))
    assert saved and saved[-1] >= "step_00000010"

    pretrain(interrupted, *args, "--resume")
    assert [r["step"] for r in metrics(interrupted)] == list(range(1, 41))
    assert losses(interrupted) == pytest.approx(losses(reference), rel=1e-6)
    evals = [(r["step"], r["eval_loss"]) for r in metrics(interrupted) if "eval_loss" in r]
    expected = [(r["step"], r["eval_loss"]) for r in metrics(reference) if "eval_loss" in r]
    assert [step for step, _ in evals] == [step for step, _ in expected] == [10, 20, 30, 40]
    assert [loss for _, loss in evals] == pytest.approx([loss for _, loss in expected], rel=1e-6)


def test_continued_pretraining_with_an_extended_tokenizer(tmp_path, reference_run):
    output = tmp_path / "continued"
    pretrain(output, "--init-from", str(reference_run / "final"), "--tokenizer", str(reference_run / "final"),
             "--extend-tokenizer-tokens", "24", "--max-steps", "2", "--micro-batch-size", "4")
    config = json.loads((output / "final" / "config.json").read_text())
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(output / "final")
    assert len(tokenizer) > 30522 and config["vocab_size"] % 64 == 0 and config["vocab_size"] >= len(tokenizer)


@pytest.mark.parametrize("recipe, argv, message", [
    ("max_step: 10\n", [], "unknown field.*'max_step'"),
    ("max_steps: ten\n", [], "'max_steps' must be int"),
    ("", ["--model-type", "roberta"], "model_type must be one of"),
    ("", ["--mlm-probability", "1.5"], "mlm_probability must be between 0 and 1"),
    ("", ["--max_steps", "ten"], "invalid int value"),
    ("", ["--head-warmup-steps", "2"], "head_warmup_steps warms up a new MLM head on a pretrained encoder"),
    ("max_steps: 5\n", ["--head-warmup-steps", "5"], "head_warmup_steps must be .* below max_steps"),
])
def test_bad_configs_fail_with_a_message_naming_the_field(tmp_path, capsys, recipe, argv, message):
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe or "preset: tiny\n")
    with pytest.raises(SystemExit) as error:
        pretrain_loop(parse_config(PretrainConfig, ["--config", str(path), "--tokenizer", "data/tokenizer", *argv]))
    import re

    assert re.search(message, f"{error.value}\n{capsys.readouterr().err}"), (error.value, message)


def test_resume_without_a_checkpoint_and_a_corpus_without_the_column(tmp_path):
    result = pretrain(tmp_path / "empty", "--resume", "--max-steps", "2", expect_rc=1)
    assert "no complete checkpoint" in result.stderr and "start without --resume" in result.stderr
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"body": "A document."}\n' * 50)
    result = pretrain(tmp_path / "bad", "--train-data", str(corpus), "--max-steps", "2", expect_rc=1)
    assert "no column 'text'" in result.stderr and "text_column" in result.stderr


def test_continued_pretraining_with_a_tokenizer_extended_beforehand(tmp_path, reference_run, data_dir):
    """briskbert-train-tokenizer --extend, then --init-from with that tokenizer: embeddings grow to match."""
    extended = tmp_path / "tokenizer"
    subprocess.run([console_script("briskbert-train-tokenizer"), "--extend",
                    str(reference_run / "final"), "--num-new-tokens", "10", "--files",
                    str(data_dir / "corpus" / "en"), "--output", str(extended)],
                   cwd=REPO, env=launch_environment(), check=True, capture_output=True)
    output = tmp_path / "continued"
    result = pretrain(output, "--init-from", str(reference_run / "final"), "--tokenizer", str(extended),
                      "--max-steps", "2", "--micro-batch-size", "4")
    assert "embeddings grown by 10 rows" in result.stdout + result.stderr
    config = json.loads((output / "final" / "config.json").read_text())
    assert config["vocab_size"] % 64 == 0 and config["vocab_size"] >= 30532


def test_resumed_metrics_log_drops_later_steps_and_a_torn_last_line(tmp_path):
    """kill -9 can land mid-write: the torn line is after the last checkpoint and must not break the resume."""
    from types import SimpleNamespace

    from briskbert.trainers.metrics_log import MetricsLog

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "loss": 1.4}\n{"step": 4, "lo')
    MetricsLog(SimpleNamespace(is_main_process=True), path, resumed_step=2)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]


def test_runs_at_two_budgets_are_compared_by_loss_and_downstream_scores(tmp_path, reference_run, capsys):
    """scripts/compare_pretraining.py and scripts/compare_downstream.py on finished runs, as the from-scratch
    comparison in docs/pretraining-comparison.md runs them: scores are kept per run and not recomputed."""
    short, long, bert = tmp_path / "briskbert-3", tmp_path / "briskbert-6", tmp_path / "bert-3"
    shutil.copytree(reference_run, short)  # 3 steps; a copy, as this test writes scores into it
    pretrain(long, "--max-steps", "6", "--micro-batch-size", "16", "--save-every", "100")
    pretrain(bert, "--max-steps", "3", "--micro-batch-size", "16", "--save-every", "100", "--model-type", "bert")

    # the loss curves: the script in this process (it reads files and draws); the downstream scores: the first
    # comparison in a fresh process, as a user runs it, then the rerun and the refusal here
    compare_pretraining_main([str(long), str(bert), "--plot", str(tmp_path / "loss.png")])
    loss = json.loads((tmp_path / "loss.json").read_text())
    assert [run["steps"] for run in loss["runs"]] == [6, 3] and (tmp_path / "loss.png").stat().st_size > 0
    assert loss["comparisons"][0]["baseline_final_eval_loss"] == loss["runs"][1]["final_eval_loss"]

    evaluation = ["--", "--tasks", "sst2", "--data-dir", str(REPO / "data"), "--max-train-samples", "16",
                  "--max-eval-samples", "16", "--max-steps", "2", "--", "--max-seq-length", "32"]
    plot = tmp_path / "glue.png"
    first = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_downstream.py"), str(short), str(long),
                            str(bert), "--plot", str(plot), *evaluation], cwd=REPO, env=launch_environment(),
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = json.loads(plot.with_suffix(".json").read_text())["runs"]
    assert [row["steps"] for row in rows] == [3, 6, 3]
    assert rows[0]["model"] == rows[1]["model"] != rows[2]["model"]
    for row in rows:
        assert set(row["tasks"]) == {"sst2"} and row["glue_average_tasks"] == ["sst2"]
        scores = json.loads((Path(row["folder"]) / "downstream_results.json").read_text())
        assert scores["tasks"]["sst2"]["hyperparameters"]["max_seq_length"] == 32
        assert row["glue_average"] == scores["glue_average"]
        assert 0 < row["train_minutes"] and row["final_eval_loss"] == metrics(Path(row["folder"]))[-1]["eval_loss"]
    assert plot.stat().st_size > 0

    capsys.readouterr()
    compare_downstream_main([str(short), str(long), str(bert), *evaluation])
    assert "=== sst2" not in "".join(capsys.readouterr())  # every run's scores were kept: nothing fine-tuned again
    assert json.loads(plot.with_suffix(".json").read_text())["runs"] == rows  # no --plot: the JSON is untouched

    (short / "downstream_results.json").unlink()
    (short / "final" / "config.json").unlink()
    with pytest.raises(SystemExit, match="--resume"):
        compare_downstream_main([str(short), *evaluation])
