"""The speed benchmark runs end to end and its FLOP accounting is right (its timings are not asserted: speed is
read from the benchmark's own side-by-side ratios, never from a timed test)."""

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from briskbert.trainers.measuring import (
    cpu_has_native_bf16,
    matmul_peak,
    segment_lengths,
    step_flops,
    stolen_cpu_seconds,
)
from launchers import console_script

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_writes_every_contender_with_a_ratio_against_bert(tmp_path):
    output = tmp_path / "benchmark.json"
    result = subprocess.run(
        [console_script("briskbert-benchmark"), "--preset", "tiny", "--dtypes", "fp32",
         "--modes", "inference,train", "--backends", "sdpa,eager", "--baselines", "bert", "--num-batches", "2",
         "--batch-size", "4", "--repeats", "1", "--threads", "1", "--no-memory", "--output", str(output)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(output.read_text())
    rows = {(row["model"], row["mode"]): row for row in record["results"]}
    assert set(rows) == {(m, mode) for m in ("briskbert:sdpa", "briskbert:eager", "bert")
                         for mode in ("inference", "train")}
    for (model, _), row in rows.items():
        assert row["real_tokens_per_s"] > 0 and math.isfinite(row["ratio_vs_bert"])
        assert 0 < row["mfu"] < 1 and row["matmul_peak_tflops"] > 0
        # the share of CPU time a shared host took while the contender ran (Linux's /proc/stat; None elsewhere)
        assert row["steal_fraction"] is None if stolen_cpu_seconds() is None else 0 <= row["steal_fraction"] <= 1
        if model == "bert":
            assert row["ratio_vs_bert"] == 1.0
    assert record["meta"]["cpu_native_bf16"] is cpu_has_native_bf16()
    assert record["meta"]["real_tokens"] > 0 and 0 <= record["meta"]["padding_fraction"] < 1
    assert "briskbert:sdpa" in result.stdout and "vs BERT" in result.stdout


def test_step_flops_counts_only_real_tokens_and_each_sequence_own_attention():
    hidden, intermediate, layers, vocab = 8, 32, 2, 64
    lengths = torch.tensor([3, 5])
    per_token = 8 * hidden * hidden + 6 * hidden * intermediate  # QKV + output projection, GLU in and out
    attention = 4 * hidden * (3 * 3 + 5 * 5)  # q k^T and p v inside each sequence only
    encoder, head = layers * (8 * per_token + attention), 2 * (2 * hidden * hidden + 2 * hidden * vocab)
    forward = encoder + head
    assert step_flops(hidden, intermediate, layers, vocab, True, lengths, 2, train=False) == forward
    assert step_flops(hidden, intermediate, layers, vocab, True, lengths, 2, train=True) == 3 * forward
    # an MLM head warm-up: the frozen encoder runs forward only
    assert step_flops(hidden, intermediate, layers, vocab, True, lengths, 2, encoder_frozen=True) == encoder + 3 * head


def test_segment_lengths_of_padded_and_packed_rows():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert segment_lengths({"attention_mask": mask}).tolist() == [3, 4]
    packed = {"attention_mask": mask, "sequence_ids": torch.tensor([[0, 0, 1, 0], [0, 1, 1, 2]])}
    assert sorted(segment_lengths(packed).tolist()) == [1, 1, 1, 2, 2]


def test_stolen_cpu_seconds_reads_the_steal_counter_where_linux_has_one():
    first = stolen_cpu_seconds()
    if not Path("/proc/stat").exists():
        assert first is None
        return
    steal = int(Path("/proc/stat").read_text().split()[8]) / os.sysconf("SC_CLK_TCK")
    assert first is not None and 0 <= first <= steal <= stolen_cpu_seconds()


def test_matmul_peak_is_a_positive_rate_in_either_precision():
    for dtype in (torch.float32, torch.bfloat16):
        assert matmul_peak("cpu", dtype, size=64, repeats=1) > 0


def test_cpu_anchors_run_beside_briskbert_and_a_missing_package_is_skipped_with_the_reason(tmp_path, monkeypatch):
    """Every CPU anchor (onnxruntime-fused and int8 HF BERT, CTranslate2 fp32/int8, torch int8 HF BERT, BriskBERT
    int8, BriskBERT in onnxruntime fp32/int8) runs in one benchmark beside BriskBERT and BertModel; a contender whose
    package is absent is skipped and the reason names the install."""
    from briskbert.trainers.config import parse_config
    from briskbert.trainers.speed import cpu_anchors
    from briskbert.trainers.speed.benchmark import BenchmarkConfig, run_benchmark

    argv = ["--preset", "tiny", "--dtypes", "fp32", "--modes", "inference", "--backends", "sdpa", "--baselines",
            "bert,cpu-anchors", "--num-batches", "2", "--batch-size", "4", "--repeats", "1", "--no-memory"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    path_before = list(sys.path)
    record = run_benchmark(parse_config(BenchmarkConfig, [*argv, "--output", str(tmp_path / "all.json")]))
    assert sys.path == path_before  # onnxruntime.transformers' import appends its folder (benchmark.py...) there
    assert not list(scratch.iterdir()), "the anchors' exported and converted models are removed once loaded"
    models = {row["model"] for row in record["results"]}
    assert models == {"briskbert:sdpa", "bert", *cpu_anchors.ANCHORS}, (models, record["meta"]["skipped"])
    assert all(row["real_tokens_per_s"] > 0 and 0 < row["mfu"] < 1 for row in record["results"])
    monkeypatch.setitem(cpu_anchors.PACKAGES, "ct2-bert", "not_a_package_here")
    monkeypatch.setitem(cpu_anchors.INSTALL, "not_a_package_here", "pip install it")
    fewer = [*argv[:9], "bert,ct2-bert", *argv[10:]]  # the skip alone, without building every anchor again
    record = run_benchmark(parse_config(BenchmarkConfig, [*fewer, "--output", str(tmp_path / "skip.json")]))
    assert "ct2-bert" not in {row["model"] for row in record["results"]}
    assert record["meta"]["skipped"] == {"ct2-bert": "ct2-bert needs not_a_package_here (pip install it)"}


def test_embedding_job_against_sentence_transformers_scores_the_same_embeddings_and_cleans_up(tmp_path):
    """`briskbert-benchmark --compare embed` on the shipped all-MiniLM-L6-v2: the embedding job's rows match
    SentenceTransformer.encode's, and its scratch folder (the conversion, the corpus) is gone afterwards."""
    output = tmp_path / "embed.json"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = subprocess.run(
        [console_script("briskbert-benchmark"), "--compare", "embed", "--num-batches", "1", "--batch-size", "8",
         "--repeats", "1", "--output", str(output)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(scratch), "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["model"]: row for row in json.loads(output.read_text())["results"]}
    assert set(rows) == {"sentence-transformers encode (original)", "briskbert-embed fp32", "briskbert-embed int8"}
    assert rows["briskbert-embed fp32"]["min_cosine"] > 0.9999 and rows["briskbert-embed int8"]["min_cosine"] > 0.99
    assert not list(scratch.glob("briskbert-embed-bench-*"))


def test_int8_comparison_scores_every_method_and_the_onnxruntime_graphs(tmp_path):
    """`briskbert-benchmark --compare int8` on the shipped all-MiniLM-L6-v2 and data/'s sentences: one row per
    int8 method plus the onnxruntime fp32 and int8 graphs, each scored against the fp32 model; the fp32 graph gives
    the fp32 model's embeddings, and the default recipe keeps them in onnxruntime as it does in PyTorch."""
    from briskbert.trainers.config import parse_config
    from briskbert.trainers.inference.quantize import METHODS, int16_pairs
    from briskbert.trainers.speed.benchmark import BenchmarkConfig, run_benchmark

    argv = ["--compare", "int8", "--num-batches", "2", "--batch-size", "16", "--repeats", "1",
            "--output", str(tmp_path / "int8.json")]
    record = run_benchmark(parse_config(BenchmarkConfig, argv))
    rows = {row["model"]: row for row in record["results"]}
    onnx_rows = {"BriskBERT onnxruntime fp32", "BriskBERT onnxruntime int8 smooth-outliers"}
    assert {f"BriskBERT int8 {method}" for method in METHODS} | onnx_rows <= set(rows)
    assert rows["BriskBERT onnxruntime fp32"]["min_cosine"] > 0.99999
    assert rows["BriskBERT onnxruntime int8 smooth-outliers"]["min_cosine"] > 0.98
    # and the other kind of CPU's weight bits beside them: a 7-bit graph computes the same on both kinds
    other = 8 if int16_pairs() else 7
    assert {f"BriskBERT int8 smooth-outliers ({other}-bit weights)",
            f"BriskBERT onnxruntime int8 smooth-outliers ({other}-bit weights)"} <= set(rows)
    seven_bits = "BriskBERT onnxruntime int8 smooth-outliers" + (" (7-bit weights)" if other == 7 else "")
    assert rows[seven_bits]["min_cosine"] > 0.98
    assert record["meta"]["weight_bits"] == 15 - other
    assert all(row["tokens_per_s"] > 0 for row in rows.values())
    assert len(record["activation_statistics"]) == 4 * 6
