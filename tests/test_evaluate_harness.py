"""The evaluation harness (briskbert-evaluate): fine-tunes each task per seed through the launcher's code, writes
the results JSON (mean and std over seeds, hyperparameters, wall-clock) and the papers' markdown table; suites skip tasks
without local data; the MosaicBERT protocol starts RTE from the MNLI checkpoint (MNLI from a synthetic file);
--spread runs deals the runs to 2 accelerate CPU processes (one run each), fails naming a failed run, and runs
everything, MNLI first, in a single process."""

import json
import os
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest
from launchers import accelerate_two_processes, console_script, launch_environment
from safetensors.torch import load_file, save_file
from task_data import write_task

from briskbert.trainers.evaluation.harness import evaluate_config, evaluate_model


REPO = Path(__file__).resolve().parents[1]
FAST = ["--", "--batch-size", "8", "--eval-batch-size", "16", "--learning-rate", "1e-3"]


def harness(argv: list[str]) -> dict:
    return evaluate_model(*evaluate_config(argv))


def test_glue_suite_over_two_seeds_writes_json_and_table(tiny_briskbert, tmp_path):
    data = tmp_path / "data"
    for name in ("sst2", "stsb"):
        write_task(data, name, n_train=16, n_validation=16)
    output = tmp_path / "out" / "tiny.json"
    command = [console_script("briskbert-evaluate"), "--model", str(tiny_briskbert), "--tasks", "glue",
               "--data-dir", str(data), "--seeds", "2", "--max-steps", "2", "--output", str(output), *FAST]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads(output.read_text())
    assert results["model"] == str(tiny_briskbert) and results["seeds"] == [42, 43]
    assert list(results["tasks"]) == ["sst2", "stsb"]
    assert set(results["skipped"]) == {"cola", "mrpc", "qqp", "mnli", "qnli", "rte", "wnli"}
    sst2 = results["tasks"]["sst2"]
    assert (sst2["dataset"], sst2["config"], sst2["task_type"], sst2["main_metric"]) == \
        ("nyu-mll/glue", "sst2", "classification", "accuracy")
    values = sst2["metrics"]["accuracy"]["values"]
    assert len(values) == 2 and sst2["metrics"]["accuracy"]["mean"] == pytest.approx(statistics.fmean(values))
    assert sst2["metrics"]["accuracy"]["std"] == pytest.approx(statistics.stdev(values))
    assert sst2["hyperparameters"]["learning_rate"] == 1e-3 and sst2["hyperparameters"]["total_steps"] == 2
    assert sst2["train_seconds"] > 0 and results["wall_seconds"] > 0 and results["created"]
    assert [run["seed"] for run in sst2["runs"]] == [42, 43] and [run["score"] for run in sst2["runs"]] == values
    assert all(run["steps"] == 2 and len(run["history"]) == 1 for run in sst2["runs"])
    stsb = results["tasks"]["stsb"]["metrics"]
    expected = statistics.fmean([sst2["metrics"]["accuracy"]["mean"],
                                 (stsb["pearson"]["mean"] + stsb["spearmanr"]["mean"]) / 2])
    assert results["glue_average"] == pytest.approx(expected) and results["glue_average_tasks"] == ["sst2", "stsb"]
    table = output.with_suffix(".md").read_text()
    assert "| Model | SST-2 (acc) | STS-B (P/S) | GLUE avg |" in table and " ± " in table
    assert table in result.stdout
    for seed in (42, 43):
        assert (tmp_path / "out" / "tiny_runs" / "sst2" / f"seed{seed}" / "results.json").is_file()


def test_mosaicbert_protocol_starts_rte_from_the_mnli_checkpoint(tiny_briskbert, tmp_path):
    data = tmp_path / "data"
    for name in ("mnli", "rte"):  # MNLI: a synthetic file of the Hub schema (none is available offline)
        write_task(data, name, n_train=16, n_validation=8)
    results = harness(["--model", str(tiny_briskbert), "--tasks", "rte", "--mnli-init", "--data-dir", str(data),
                            "--max-steps", "2", "--output", str(tmp_path / "protocol.json"), *FAST])
    assert list(results["tasks"]) == ["mnli", "mnli_mismatched", "rte"]
    assert results["tasks"]["rte"]["init_from"] == "mnli" and results["tasks"]["mnli"]["init_from"] is None
    assert results["tasks"]["mnli_mismatched"]["trained_as"] == "mnli"
    rte_run = json.loads((tmp_path / "protocol_runs" / "rte" / "seed42" / "results.json").read_text())
    assert rte_run["model"] == str(tmp_path / "protocol_runs" / "mnli" / "seed42" / "final")
    assert results["glue_average_tasks"] == ["mnli", "mnli_mismatched", "rte"]


def test_an_interrupted_evaluation_reuses_its_finished_runs_and_only_those(tiny_briskbert, tmp_path, capsys):
    """A (task, seed) run is read back instead of run again only when it finished with the same settings on the same
    weights: an evaluation interrupted after its first run goes on with the second."""
    data = tmp_path / "data"
    write_task(data, "sst2", n_train=16, n_validation=8)
    output = tmp_path / "eval" / "results.json"
    argv = ["--model", str(tiny_briskbert), "--tasks", "sst2", "--data-dir", str(data), "--seeds", "2",
            "--max-steps", "2", "--output", str(output), *FAST]
    first = harness(argv)
    runs = tmp_path / "eval" / "results_runs" / "sst2"
    assert json.loads((runs / "seed42" / "results.json").read_text())["model_fingerprint"]
    (runs / "seed43" / "results.json").unlink()  # interrupted while fine-tuning seed 43
    capsys.readouterr()
    again = harness(argv)
    said = capsys.readouterr().out
    assert "sst2, seed 42: finished earlier with the same model weights and settings, reused" in said
    assert "=== sst2, seed 43" in said and "seed 43: finished earlier" not in said
    assert again["tasks"]["sst2"]["metrics"] == first["tasks"]["sst2"]["metrics"]

    # other settings, or other weights in the same folder, are run again
    harness(argv[:-1] + ["1e-2"])
    assert "reused" not in capsys.readouterr().out
    moved = tmp_path / "moved"
    shutil.copytree(tiny_briskbert, moved)
    harness(["--model", str(moved), *argv[2:-1], "1e-2"])  # the same weights elsewhere: reused
    assert capsys.readouterr().out.count("reused") == 2
    weights = moved / "model.safetensors"
    tensors = load_file(weights)
    tensors["decoder.bias"] += 1
    save_file(tensors, weights, metadata={"format": "pt"})
    harness(["--model", str(moved), *argv[2:-1], "1e-2"])
    assert "reused" not in capsys.readouterr().out
    harness(["--model", str(moved), "--reuse-finished", "false", *argv[2:-1], "1e-2"])
    assert "reused" not in capsys.readouterr().out


def test_named_tasks_without_data_are_errors_not_skips(tiny_briskbert, tmp_path):
    with pytest.raises(SystemExit, match="qnli: no train file"):
        harness(["--model", str(tiny_briskbert), "--tasks", "qnli", "--data-dir", str(tmp_path),
                      "--output", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit, match="Unknown task 'glu'"):
        harness(["--model", str(tiny_briskbert), "--tasks", "glu", "--output", str(tmp_path / "x.json")])


# ---- --spread runs: (task, seed) runs dealt out to the launcher's processes, one device each

def launch_two_processes(*args: str) -> subprocess.CompletedProcess:
    """`accelerate launch` on 2 CPU processes (hub_configs/accelerate/cpu-2proc.yaml) running the harness."""
    command = accelerate_two_processes("-m", "briskbert.scripts.evaluate_model", *args)
    return subprocess.run(command, cwd=REPO, env=launch_environment(), capture_output=True, text=True,
                          timeout=300)


def test_spread_runs_deals_tasks_to_two_processes(tiny_briskbert, tmp_path):
    data = tmp_path / "data"
    for name in ("sst2", "rte"):
        write_task(data, name, n_train=16, n_validation=8)
    output = tmp_path / "spread.json"
    result = launch_two_processes("--model", str(tiny_briskbert), "--tasks", "sst2,rte", "--data-dir", str(data),
                                  "--max-steps", "2", "--spread", "runs", "--output", str(output), *FAST)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    results = json.loads(output.read_text())
    assert list(results["tasks"]) == ["sst2", "rte"] and results["seeds"] == [42]
    assert results["spread"]["mode"] == "runs" and results["spread"]["processes"] == 2
    placed = {(r["task"], r["seed"]): r["process"] for r in results["spread"]["runs"]}
    assert placed == {("sst2", 42): 0, ("rte", 42): 1}
    for name in ("sst2", "rte"):
        run = tmp_path / "spread_runs" / name / "seed42"
        scored = json.loads((run / "results.json").read_text())
        assert scored["num_processes"] == 1 and scored["device"] == "cpu" and scored["steps"] == 2
        assert (run / "final" / "config.json").is_file() and (run / "finetune.log").is_file()
    assert "[process 0/2] 1 of 2 runs on CPU: sst2 seed 42" in result.stdout
    assert "[process 1/2] 1 of 2 runs on CPU: rte seed 42" in result.stdout
    assert not (tmp_path / "spread_runs" / ".spread").exists()  # the launch's markers are cleaned up


def test_spread_runs_fails_the_command_naming_the_failed_run(tiny_briskbert, tmp_path):
    data = tmp_path / "data"
    for name in ("sst2", "rte"):
        write_task(data, name, n_train=16, n_validation=8)
    train = data / "glue" / "rte" / "train.jsonl"  # RTE without its second sentence: the run on process 1 fails
    rows = [{k: v for k, v in json.loads(line).items() if k != "sentence2"} for line in train.read_text().splitlines()]
    train.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "broken.json"
    result = launch_two_processes("--model", str(tiny_briskbert), "--tasks", "sst2,rte", "--data-dir", str(data),
                                  "--max-steps", "2", "--spread", "runs", "--output", str(output), *FAST)
    log = tmp_path / "broken_runs" / "rte" / "seed42" / "finetune.log"
    assert result.returncode != 0
    assert f"the evaluation failed: rte seed 42 failed on process 1 (exit code 1); log: {log}" in result.stderr, \
        (result.stdout + result.stderr)[-4000:]
    assert "sentence2" in log.read_text() and not output.exists()


def test_spread_runs_in_one_process_waits_for_mnli_before_rte(tiny_briskbert, tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = tmp_path / "data"
    for name in ("mnli", "rte"):
        write_task(data, name, n_train=16, n_validation=8)
    results = harness(["--model", str(tiny_briskbert), "--tasks", "rte", "--mnli-init", "--data-dir", str(data),
                            "--max-steps", "2", "--spread", "runs", "--output", str(tmp_path / "one.json"), *FAST])
    assert list(results["tasks"]) == ["mnli", "mnli_mismatched", "rte"]
    assert results["tasks"]["rte"]["init_from"] == "mnli"
    assert [(r["task"], r["process"]) for r in results["spread"]["runs"]] == [("mnli", 0), ("rte", 0)]
    rte_run = json.loads((tmp_path / "one_runs" / "rte" / "seed42" / "results.json").read_text())
    assert rte_run["model"] == str(tmp_path / "one_runs" / "mnli" / "seed42" / "final")


def test_spread_deals_round_robin_with_waiting_runs_last_and_strips_the_launcher_env():
    from briskbert.trainers.evaluation.spread import Run, child_env, deal

    def run(key, after=()):
        return Run(key, key, [], Path(key), after)

    runs = [run("mnli/seed42"), run("mnli/seed43"), run("rte/seed42", ("mnli/seed42",)),
            run("rte/seed43", ("mnli/seed43",)), run("sst2/seed42"), run("sst2/seed43")]
    assert deal(runs, 3) == {"mnli/seed42": 0, "mnli/seed43": 1, "sst2/seed42": 2, "sst2/seed43": 0,
                             "rte/seed42": 1, "rte/seed43": 2}
    assert set(deal(runs, 1).values()) == {0}
    with pytest.raises(ValueError, match="waits on"):
        deal([run("rte/seed42", ("mnli/seed42",))], 2)
    launched = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "x",
                "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "none", "GROUP_RANK": "0", "ROLE_RANK": "1",
                "ACCELERATE_USE_FSDP": "true", "FSDP_SHARDING_STRATEGY": "1", "ACCELERATE_MIXED_PRECISION": "bf16",
                "PATH": "/bin", "CUDA_VISIBLE_DEVICES": "4,5"}
    assert child_env(launched, 1, []) == {"ACCELERATE_MIXED_PRECISION": "bf16", "PATH": "/bin",
                                          "CUDA_VISIBLE_DEVICES": "4,5"}
    assert child_env(launched, 1, ["4", "5"])["CUDA_VISIBLE_DEVICES"] == "5"
    with pytest.raises(SystemExit, match="LOCAL_RANK 2 has no GPU"):
        child_env(launched, 2, ["4", "5"])


@pytest.mark.parametrize("task, flags", [
    ("sst2", []),
    ("rte", ["--learning-rate", "2e-5", "--num-train-epochs", "2", "--group-by-length", "true"]),
    ("mnli", ["--config", "tasks/squad", "--batch-size", "8"]),  # another task's protocol, then a flag
    ("ncbi_disease", ["--learning_rate=3e-5", "--seed", "7"]),  # a flag equal to nothing the harness sets
])
def test_the_harness_builds_each_run_config_as_briskbert_finetune_reads_the_same_flags(task, flags, tmp_path):
    """The harness builds every run's FinetuneConfig itself (the task's protocol, its settings, the flags after
    `--`) and never a command line; the config equals what `briskbert-finetune` makes of the command line the
    harness used to build, so users' flags mean what they meant."""
    from briskbert.trainers.evaluation.harness import EvaluateConfig, run_config
    from briskbert.trainers.finetuning.loop import FinetuneConfig, finetune_config

    config = EvaluateConfig(model="my-model", tasks=task, data_dir="data", max_train_samples=32, max_eval_samples=40,
                            max_steps=5, peft="lora", mnli_init=True)
    run, source = run_config(config, tmp_path, task, 43, flags)
    model = str(tmp_path / "mnli" / "seed43" / "final") if task == "rte" else "my-model"
    argv = ["--model", model, "--task", task, "--output-dir", str(tmp_path / task / "seed43"), "--seed", "43",
            "--max-train-samples", "32", "--max-eval-samples", "40", "--data-dir", "data", "--max-steps", "5",
            "--peft", "lora", *(["--merge"] if task == "mnli" else [])]
    assert run == finetune_config(argv + flags)
    assert source == ("mnli" if task == "rte" else None)
    assert FinetuneConfig.for_task(task, model="m").learning_rate == finetune_config(
        ["--model", "m", "--task", task]).learning_rate  # the task's own protocol, with no command line at all
