"""Shared fixtures for the BriskBERT tests: the real tokenizer, real sentences, batching and a clean subprocess."""

import json
import os
import tempfile
from pathlib import Path

# Under `pytest -n 2` (the README's command) two workers share the machine's 2 cores: one thread each, for them and
# the processes they start, instead of 2 x 2 threads fighting; and each worker its own cache of remote-code modules,
# which transformers writes while loading trust_remote_code models. Set before torch and transformers are imported.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["HF_MODULES_CACHE"] = tempfile.mkdtemp(prefix=f"hf_modules_{os.environ['PYTEST_XDIST_WORKER']}_")

import pytest  # noqa: E402
import torch  # noqa: E402

from briskbert.trainers.hub.fresh_process import FreshProcessError, run_without_briskbert  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
TOKENIZER_DIR = DATA / "tokenizer"
# transformers_shims/ holds stand-ins imported by the transformers common tests, not tests
collect_ignore = ["transformers_shims"]
# the model code a saved folder carries: every module of modeling/ (the package's __init__ aside)
MODEL_CODE_FILES = sorted(path.name for path in (REPO / "modeling").glob("*.py") if path.name != "__init__.py")


def read_jsonl(relative_path: str, limit: int | None = None) -> list[dict]:
    rows = []
    with open(DATA / relative_path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def jsonl():
    """`jsonl("glue/sst2/validation.jsonl", limit=8)` -> list of row dicts."""
    return read_jsonl


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    assert tok.is_fast, "the data/tokenizer folder should load as a fast (tokenizers) tokenizer"
    return tok


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    """24 real sentences of varied length: 8 each from SST-2, CoLA and RTE (premises, the long ones)."""
    sst2 = [r["sentence"].strip() for r in read_jsonl("glue/sst2/validation.jsonl", limit=8)]
    cola = [r["sentence"].strip() for r in read_jsonl("glue/cola/validation.jsonl", limit=8)]
    rte = [r["sentence1"].strip() for r in read_jsonl("glue/rte/validation.jsonl", limit=8)]
    # interleave so every slice of the list mixes short and long sentences
    mixed = [s for triple in zip(sst2, cola, rte) for s in triple]
    assert len(mixed) == 24
    return mixed


def _make_batch(tokenizer, texts, max_length: int = 128, **kwargs) -> dict[str, torch.Tensor]:
    return dict(
        tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt", **kwargs)
    )


@pytest.fixture(scope="session")
def make_batch(tokenizer):
    """`make_batch(texts)` -> dict(input_ids, token_type_ids, attention_mask), right-padded, truncated to 128."""

    def make(texts, max_length: int = 128, **kwargs):
        return _make_batch(tokenizer, texts, max_length=max_length, **kwargs)

    return make


def _run_fresh_python(code: str, cwd) -> str:
    try:
        return run_without_briskbert(code, Path(cwd), timeout=300)
    except FreshProcessError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def run_fresh_python():
    """`run_fresh_python(code, cwd)` runs `code` in a new interpreter (cwd=cwd, no PYTHONPATH, HF offline, our
    packages unimportable) and returns its stdout; a non-zero exit fails the test with the child's stderr."""
    return _run_fresh_python


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def tiny_briskbert(tmp_path_factory, tokenizer) -> Path:
    """A freshly initialised BriskBERT-tiny MLM checkpoint with its tokenizer, as briskbert-pretrain leaves one."""
    from briskbert import BriskBertConfig, BriskBertForMaskedLM

    folder = tmp_path_factory.mktemp("tiny_briskbert")
    torch.manual_seed(0)
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    BriskBertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """Three pretraining steps of 16 rows in one process: the large batch the other layouts must reproduce."""
    from pretrain_runs import pretrain

    output = tmp_path_factory.mktemp("reference")
    pretrain(output, "--max-steps", "3", "--micro-batch-size", "16", "--save-every", "100")
    return output


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """`uninterrupted(*args)`: the finished pretraining run an interrupted one with these flags must reproduce, made
    once per set of flags (kill -9 and SIGTERM share theirs)."""
    from pretrain_runs import pretrain

    runs = {}

    def run(*args: str) -> Path:
        if args not in runs:
            runs[args] = tmp_path_factory.mktemp("uninterrupted")
            pretrain(runs[args], *args)
        return runs[args]

    return run
