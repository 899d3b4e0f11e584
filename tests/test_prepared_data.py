"""Prepare once, train many times: `briskbert-prepare-data` packs the corpus into a folder, in worker processes, with
the rows the raw-text path packs; `briskbert-pretrain --train-data <folder>` trains on exactly the curve it trains on
from raw text, and refuses, naming the fix, a folder of another tokenizer or length, or with a damaged file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from launchers import console_script, launch_environment
from pretrain_runs import FAST, RECIPE, SCRIPT
from transformers import AutoTokenizer

from briskbert.trainers.config import parse_config
from briskbert.trainers.data.corpus import load_corpus, tokenize_and_pack
from briskbert.trainers.data.prepared import INFO_FILE, PrepareDataConfig, prepare_corpus, tokenizer_fingerprint
from briskbert.trainers.pretraining.loop import PretrainConfig
from briskbert.trainers.pretraining.loop import pretrain as pretrain_loop

REPO = Path(__file__).resolve().parents[1]
CORPUS = "data/corpus/en"
STEPS = ["--max-steps", "3", "--eval-every", "3", "--save-every", "100"]


def run(command: list[str], cache: Path, expect_rc: int = 0) -> subprocess.CompletedProcess:
    """A fresh process with its own datasets cache, so no result of another process is reused."""
    env = {**launch_environment(), "HF_DATASETS_CACHE": str(cache)}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == expect_rc, f"{command[:2]} exited {result.returncode}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """The sample corpus, tokenized by 2 worker processes into rows of 64 tokens."""
    work = tmp_path_factory.mktemp("prepared")
    run([console_script("briskbert-prepare-data"), "--train-data", CORPUS, "--tokenizer", "data/tokenizer",
         "--max-seq-length", "64", "--num-proc", "2", "--output", str(work / "shards")], work / "cache")
    return work / "shards"


def test_prepared_rows_are_the_raw_paths_rows_whatever_the_workers(prepared, tokenizer):
    record = json.loads((prepared / INFO_FILE).read_text())
    rows = datasets.load_from_disk(str(prepared))
    raw = tokenize_and_pack(load_corpus(CORPUS), tokenizer, 64)  # one process, in this one
    for column in ("input_ids", "sequence_ids", "row_id"):
        assert rows[column] == raw[column], column
    tokens = sum(map(len, rows["input_ids"]))
    assert record["rows"] == len(rows) and record["tokens"] == tokens and record["max_seq_length"] == 64
    assert record["packing_efficiency"] == pytest.approx(tokens / (64 * len(rows)))
    assert record["num_proc"] == 2 and record["tokens_per_s_per_process"] > 0
    assert record["tokenizer_fingerprint"] == tokenizer_fingerprint(tokenizer)
    # 2-byte ids and segment indices: a prepared token takes a little over 4 bytes, not the 16 of Python ints
    assert rows.features["input_ids"].feature.dtype == "uint16" and rows.features["sequence_ids"].feature.dtype == "int16"
    assert 4 < record["bytes_per_token"] < 5
    assert {"state.json", "dataset_info.json"} <= set(record["files"]) and any(
        name.endswith(".arrow") for name in record["files"])


def test_tokenizer_fingerprint_is_its_ids_not_its_call_settings(tmp_path, tokenizer):
    """A saved and reloaded copy, or one that was called with truncation and padding, is the same tokenizer; one token
    more is not."""
    tokenizer.save_pretrained(tmp_path / "copy")
    copy = AutoTokenizer.from_pretrained(tmp_path / "copy")
    copy(["a sentence", "and a longer second sentence"], truncation=True, max_length=4, padding=True)
    assert tokenizer_fingerprint(copy) == tokenizer_fingerprint(tokenizer)
    copy.add_tokens(["zzdomainpiece"])
    assert tokenizer_fingerprint(copy) != tokenizer_fingerprint(tokenizer)


def test_pretraining_on_the_prepared_folder_follows_the_raw_corpus_curve(tmp_path, prepared):
    """Same rows, same row ids (so the same masks): the same losses, bit for bit, without tokenizing at start-up."""
    launch = [sys.executable, SCRIPT, "--config", RECIPE, *FAST, *STEPS]
    run([*launch, "--output-dir", str(tmp_path / "raw")], tmp_path / "cache-raw")
    run([*launch, "--train-data", str(prepared), "--output-dir", str(tmp_path / "prepared")],
        tmp_path / "cache-prepared")

    def curve(name):
        return [(r["loss"], r.get("eval_loss")) for r in map(json.loads, (tmp_path / name / "metrics.jsonl").open())]
    assert curve("prepared") == curve("raw")
    raw, from_folder = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("raw", "prepared"))
    assert from_folder["packing_efficiency"] == raw["packing_efficiency"]
    assert from_folder["startup_seconds"] > 0 and from_folder["peak_resident_mb"] > 100
    assert not list((tmp_path / "cache-prepared").rglob("*.arrow")), "the prepared run tokenized something"


def damaged_copy(prepared: Path, tmp_path: Path, damage) -> Path:
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in prepared.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    damage(next(copy.glob("*.arrow")))
    return copy


def truncate(path: Path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_byte(path: Path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("problem, argv, message", [
    ("length", ["--max-seq-length", "128"], "holds rows of 64 tokens.*pass --max-seq-length 64"),
    ("tokenizer", [], "another tokenizer .*pass --tokenizer data/tokenizer"),
    ("truncated", [], r"data-00000-of-00001\.arrow is not the file that was written to the prepared folder.*truncated"),
    ("corrupted", [], r"\.arrow is not the file that was written to the prepared folder .*SHA-256.*prepare the corpus"),
    ("streaming", ["--streaming", "true"], "memory-mapped, not streamed: drop --streaming"),
    ("mixed", [], "mixes the prepared folder"),
])
def test_a_folder_that_does_not_fit_the_run_is_refused_naming_the_fix(tmp_path, prepared, tokenizer, problem, argv,
                                                                       message):
    folder, tokenizer_path = prepared, "data/tokenizer"
    train_data = [str(folder)]
    if problem == "tokenizer":
        tokenizer.save_pretrained(tmp_path / "other")
        other = AutoTokenizer.from_pretrained(tmp_path / "other")
        other.add_tokens(["zzdomainpiece"])
        other.save_pretrained(tmp_path / "other")
        tokenizer_path = str(tmp_path / "other")
    elif problem in ("truncated", "corrupted"):
        folder = damaged_copy(prepared, tmp_path, truncate if problem == "truncated" else flip_a_byte)
        train_data = [str(folder)]
    elif problem == "mixed":
        train_data = [str(folder), CORPUS]
    config = parse_config(PretrainConfig, ["--config", "tiny-cpu", "--max-seq-length", "64", "--tokenizer",
                                           tokenizer_path, "--train-data", *train_data, "--output-dir",
                                           str(tmp_path / "run"), *argv])
    with pytest.raises(SystemExit, match=message):
        pretrain_loop(config)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_preparation_never_replaces_a_folder_unasked_and_leaves_no_half_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    output = tmp_path / "shards"
    output.mkdir()
    (output / "mine.txt").write_text("the user's own file")
    config = PrepareDataConfig(train_data=["data/corpus/en/us_inaugural_addresses.txt"], output=str(output),
                               max_seq_length=64)
    with pytest.raises(SystemExit, match="already exists.*--overwrite"):
        prepare_corpus(config)
    overwrite = PrepareDataConfig(**{**config.__dict__, "overwrite": True})
    with pytest.raises(SystemExit, match="not a prepared corpus, and --overwrite replaces only a prepared folder"):
        prepare_corpus(overwrite)
    assert (output / "mine.txt").read_text() == "the user's own file"

    # an interrupted preparation left its temporary folder: the next one replaces it and renames only when complete
    output = tmp_path / "shards-2"
    config = PrepareDataConfig(**{**config.__dict__, "output": str(output)})
    (tmp_path / ".partial-shards-2").mkdir()
    (tmp_path / ".partial-shards-2" / "stale.arrow").write_text("half written")
    record = prepare_corpus(config, echo=lambda *_: None)
    assert not (tmp_path / ".partial-shards-2").exists() and "stale.arrow" not in os.listdir(output)
    assert json.loads((output / INFO_FILE).read_text())["rows"] == record["rows"] > 0
    # --overwrite replaces a prepared folder, once the new one is complete
    again = prepare_corpus(PrepareDataConfig(**{**config.__dict__, "overwrite": True, "max_seq_length": 32}),
                           echo=lambda *_: None)
    assert json.loads((output / INFO_FILE).read_text())["max_seq_length"] == 32 and again["rows"] > record["rows"]


def test_bad_preparation_settings_name_the_field():
    with pytest.raises(SystemExit, match="num_proc must be at least 1"):
        PrepareDataConfig(num_proc=0)
    with pytest.raises(SystemExit, match="max_seq_length must be at least 3"):
        PrepareDataConfig(max_seq_length=2)


def test_the_scale_measurement_reports_rate_start_up_memory_loader_and_checkpoint(tmp_path, data_dir):
    """scripts/measure_scale.py as docs/scale.md runs it, on a small corpus: every figure present and the
    smaller corpus a tenth of the larger one."""
    lines = (data_dir / "corpus/en/us_inaugural_addresses.txt").read_text(encoding="utf-8").splitlines()
    (tmp_path / "corpus.txt").write_text("\n".join(line for line in lines[:1500] if line.strip()) + "\n")
    run([sys.executable, str(REPO / "scripts" / "measure_scale.py"), "--corpus", str(tmp_path / "corpus.txt"),
         "--workers", "1", "--pretrain-steps", "1", "--max-seq-length", "64", "--loader-batch-size", "8", "--checkpoint-preset", "tiny", "--repeats", "1",
         "--output-dir", str(tmp_path / "m")],
        tmp_path / "cache")
    record = json.loads((tmp_path / "m" / "scale.json").read_text())
    full, tenth = (next(p for p in record["preparations"] if p["corpus"] == size) for size in ("full", "tenth"))
    assert 0.05 < tenth["megabytes"] / full["megabytes"] < 0.15 and 0.05 < tenth["tokens"] / full["tokens"] < 0.15
    assert full["tokens_per_s_per_process"] > 0 and full["workers"] == 1
    assert sorted((r["corpus"], r["data"]) for r in record["results"]) == [
        ("full", "prepared"), ("full", "raw"), ("tenth", "prepared"), ("tenth", "raw")]
    assert all(r["startup_seconds"] > 0 and r["peak_resident_mb"] > 100 for r in record["results"])
    assert record["meta"]["cpu"] and 100 < record["libraries_resident_mb"] < max(r["peak_resident_mb"] for r in
                                                                              record["results"])
    loader = record["loader"]
    assert loader["tokens"] > 0 and 0 < loader["tokens_per_s"] < min(loader["read_and_collate_tokens_per_s"],
                                                                      loader["masking_tokens_per_s"])
    checkpoint = record["checkpoint"]  # BriskBERT-tiny: fp32 weights and two AdamW moments, 12 bytes per parameter
    assert checkpoint["preset"] == "tiny" and 12 * checkpoint["parameters"] < checkpoint["bytes"] < 14 * checkpoint[
        "parameters"] and checkpoint["seconds"] > 0
