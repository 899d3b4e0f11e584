"""A corpus tokenized and packed once, into a folder that every later pretraining run (and every process of one)
memory-maps instead of tokenizing again: what `briskbert-prepare-data` writes and `briskbert-pretrain --train-data
<folder>` reads.

    prepare_corpus(PrepareDataConfig(train_data=["corpus/"], tokenizer="my-tokenizer", output="shards/"))
    rows = load_prepared("shards/", tokenizer, max_seq_length=128)   # a datasets.Dataset, memory-mapped

The folder is `datasets.Dataset.save_to_disk` (Arrow files, read through memory maps, so a run's resident memory
does not grow with the corpus) plus `briskbert_prepared.json`: the tokenizer's fingerprint, the sequence length,
the row and token counts, the packing efficiency, and each data file's size and SHA-256, so that a folder built
for another tokenizer or length, or a truncated or corrupted file, is refused at load, naming what to do.

Rows are those `tokenize_and_pack` gives the raw-text path, whatever `num_proc`: only tokenizing is spread over
worker processes; packing runs in one, because rows packed per worker would depend on how the corpus was split.
The folder is written under a temporary name and renamed when complete, so an interrupted preparation leaves no
folder that looks prepared.
"""

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
from transformers import AutoTokenizer

from ..config import raise_problems
from ..file_integrity import check_files, file_records
from ..resources import data_path
from .corpus import load_sources, row_lengths, tokenize_and_pack
from .packing import packing_efficiency

INFO_FILE = "briskbert_prepared.json"
FORMAT_VERSION = 1


@dataclass
class PrepareDataConfig:
    train_data: list[str] = field(default_factory=lambda: ["data/corpus/en"])  # files, folders or a hub id
    tokenizer: str = "data/tokenizer"  # a folder or hub id: the one the pretraining run will use
    output: str = "outputs/prepared"
    max_seq_length: int = 128
    text_column: str = "text"
    hub_config: str | None = None
    num_proc: int = 1  # worker processes that tokenize; packing runs in this one
    overwrite: bool = False

    def __post_init__(self):
        problems = []
        for name in ("num_proc", "max_seq_length"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_seq_length < 3:
            problems.append(f"max_seq_length must be at least 3 ([CLS] token [SEP]), got {self.max_seq_length}")
        raise_problems("data preparation", problems)


def tokenizer_fingerprint(tokenizer) -> str:
    """What decides the ids a text gets: the fast tokenizer's normaliser, pre-tokenizer, model and added tokens (not
    its truncation or padding, which calls change), or a slow tokenizer's class, vocabulary and special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        pipeline = json.loads(backend.to_str())
        identity = {key: pipeline.get(key) for key in ("added_tokens", "normalizer", "pre_tokenizer", "model")}
    else:
        identity = {"class": type(tokenizer).__name__, "vocab": sorted(tokenizer.get_vocab().items()),
                    "lowercase": getattr(tokenizer, "do_lower_case", None)}
    identity["special_ids"] = [tokenizer.cls_token_id, tokenizer.sep_token_id]
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def is_prepared(path: str | Path) -> bool:
    return (Path(path) / INFO_FILE).is_file()


def prepared_folder(train_data: list[str]) -> Path | None:
    """The prepared folder a run's `train_data` names, or None for raw files and hub ids. A prepared folder stands
    alone: mixing it with other sources is refused."""
    prepared = [source for source in train_data if is_prepared(source)]
    if not prepared:
        return None
    if len(train_data) > 1:
        raise SystemExit(f"train_data mixes the prepared folder {prepared[0]} with other sources {train_data}: "
                         f"prepare them together (briskbert-prepare-data --train-data <all of them>) and train on "
                         f"that one folder.")
    return Path(prepared[0])


def prepare_corpus(config: PrepareDataConfig, echo=print) -> dict:
    """Tokenize and pack the corpus into `config.output`; returns the folder's record (also in its INFO_FILE)."""
    output = Path(config.output)
    if output.exists() and not config.overwrite:
        raise SystemExit(f"{output} already exists: choose another --output, or pass --overwrite to replace it.")
    if output.exists() and not is_prepared(output) and any(output.iterdir()):
        raise SystemExit(f"{output} holds files that are not a prepared corpus, and --overwrite replaces only a prepared "
                         f"folder: choose another --output.")
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(data_path(config.tokenizer), trust_remote_code=True)
    corpus = load_sources(config.train_data, config.text_column, config.hub_config)
    rows = tokenize_and_pack(corpus, tokenizer, config.max_seq_length, config.text_column, num_proc=config.num_proc)
    lengths = row_lengths(rows)
    tokens = int(lengths.sum())
    efficiency = packing_efficiency(lengths, config.max_seq_length)
    seconds = time.perf_counter() - start

    partial = output.with_name(f".partial-{output.name}")
    shutil.rmtree(partial, ignore_errors=True)
    rows.save_to_disk(str(partial))
    record = {
        "format_version": FORMAT_VERSION,
        "tokenizer": config.tokenizer,
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
        "max_seq_length": config.max_seq_length,
        "rows": len(rows),
        "tokens": tokens,
        "packing_efficiency": efficiency,
        "corpus_rows": len(corpus),
        "sources": config.train_data,
        "num_proc": config.num_proc,
        "seconds": round(seconds, 2),
        "tokens_per_s_per_process": tokens / seconds / config.num_proc,
        "files": file_records(partial),
        "config": asdict(config),
    }
    record["bytes_per_token"] = sum(file["bytes"] for file in record["files"].values()) / max(tokens, 1)
    (partial / INFO_FILE).write_text(json.dumps(record, indent=2))
    if output.exists():  # --overwrite: the old folder goes only once the new one is complete
        shutil.rmtree(output)
    partial.rename(output)
    echo(f"{record['rows']:,} rows of {config.max_seq_length} tokens ({tokens:,} tokens, packing efficiency "
         f"{record['packing_efficiency']:.1%}) from {record['corpus_rows']:,} corpus rows in {seconds:.1f} s "
         f"({record['tokens_per_s_per_process']:,.0f} tokens/s per process) -> {output}")
    return record


def load_prepared(folder: str | Path, tokenizer, max_seq_length: int,
                  hash_files: bool = True) -> tuple[datasets.Dataset, dict]:
    """(memory-mapped rows, the folder's record); refuses a folder of another tokenizer or length, or whose files are
    not the ones prepared: sizes always, contents when `hash_files` (hashing reads the whole corpus once, so in a
    multi-process run one process per machine does it)."""
    folder = Path(folder)
    record = json.loads((folder / INFO_FILE).read_text())
    if record.get("format_version") != FORMAT_VERSION:
        raise SystemExit(f"{folder} was prepared in format {record.get('format_version')}, this BriskBERT reads "
                         f"{FORMAT_VERSION}: prepare it again with briskbert-prepare-data.")
    if record["tokenizer_fingerprint"] != tokenizer_fingerprint(tokenizer):
        raise SystemExit(
            f"{folder} was tokenized with another tokenizer ({record['tokenizer']}) than this run's "
            f"({tokenizer.name_or_path}): pass --tokenizer {record['tokenizer']}, or prepare the corpus again with "
            f"briskbert-prepare-data --tokenizer {tokenizer.name_or_path}.")
    if record["max_seq_length"] != max_seq_length:
        raise SystemExit(
            f"{folder} holds rows of {record['max_seq_length']} tokens, this run asks for {max_seq_length}: pass "
            f"--max-seq-length {record['max_seq_length']}, or prepare the corpus again with --max-seq-length "
            f"{max_seq_length}.")
    check_files(folder, record["files"], "prepared folder",
                "Copy the whole folder again, or prepare the corpus again with briskbert-prepare-data.", hash_files)
    return datasets.load_from_disk(str(folder)), record
