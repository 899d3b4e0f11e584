"""scripts/evaluate.py: fine-tunes each task per seed through the launcher's code, writes the results JSON
(mean and std over seeds, hyperparameters, wall-clock) and the papers' markdown table; suites skip tasks
without local data; the MosaicBERT protocol starts RTE from the MNLI checkpoint (MNLI from a synthetic file)."""

import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from task_data import write_task


REPO = Path(__file__).resolve().parents[1]
FAST = ["--", "--batch-size", "8", "--eval-batch-size", "16", "--learning-rate", "1e-3"]


def load_harness():
    spec = importlib.util.spec_from_file_location("scripts_evaluate", REPO / "scripts" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_glue_suite_over_two_seeds_writes_json_and_table(tiny_briskbert, tmp_path):
    data = tmp_path / "data"
    for name in ("sst2", "stsb"):
        write_task(data, name, n_train=16, n_validation=16)
    output = tmp_path / "out" / "tiny.json"
    command = [sys.executable, str(REPO / "scripts" / "evaluate.py"), "--model", str(tiny_briskbert), "--tasks", "glue",
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
    harness = load_harness()
    results = harness.main(["--model", str(tiny_briskbert), "--tasks", "rte", "--mnli-init", "--data-dir", str(data),
                            "--max-steps", "2", "--output", str(tmp_path / "protocol.json"), *FAST])
    assert list(results["tasks"]) == ["mnli", "mnli_mismatched", "rte"]
    assert results["tasks"]["rte"]["init_from"] == "mnli" and results["tasks"]["mnli"]["init_from"] is None
    assert results["tasks"]["mnli_mismatched"]["trained_as"] == "mnli"
    rte_run = json.loads((tmp_path / "protocol_runs" / "rte" / "seed42" / "results.json").read_text())
    assert rte_run["model"] == str(tmp_path / "protocol_runs" / "mnli" / "seed42" / "final")
    assert results["glue_average_tasks"] == ["mnli", "mnli_mismatched", "rte"]


def test_named_tasks_without_data_are_errors_not_skips(tiny_briskbert, tmp_path):
    harness = load_harness()
    with pytest.raises(SystemExit, match="qnli: no train file"):
        harness.main(["--model", str(tiny_briskbert), "--tasks", "qnli", "--data-dir", str(tmp_path),
                      "--output", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit, match="Unknown task 'glu'"):
        harness.main(["--model", str(tiny_briskbert), "--tasks", "glu", "--output", str(tmp_path / "x.json")])
