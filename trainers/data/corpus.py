"""Raw text in, packed token rows out: a hub dataset id or local files (txt, json/jsonl, parquet, .gz too).

Tokenizing and packing go through `datasets.map`, whose results are cached on disk by the fingerprint of
the data and the function, so a second run (or the other processes of a multi-process launch, which wait for
the main process) reuses them. `streaming=True` reads a hub dataset lazily instead, for corpora too big to
download first.
"""

from functools import partial
from itertools import islice
from pathlib import Path

import datasets
import pyarrow.compute as pc

from ..resources import data_path
from .packing import pack_documents

LOADERS = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def resolve_files(source: str | list[str]) -> list[Path] | None:
    """Local files named by `source` (files, folders or globs), or None when `source` is a hub dataset id."""
    sources = [source] if isinstance(source, str) else list(source)
    files: list[Path] = []
    for item in sources:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and _loader(p, strict=False))
        elif path.is_file():
            files.append(path)
        elif any(char in item for char in "*?["):
            files += sorted(Path().glob(item))
        elif isinstance(source, str) and "/" in item and not path.suffix:
            return None  # "org/name": a hub dataset
        else:
            raise FileNotFoundError(f"Corpus file {item!r} does not exist (and is not a hub dataset id).")
    if not files:
        raise FileNotFoundError(f"No txt/json/jsonl/parquet files (or .gz of them) found in {sources}.")
    return files


def _loader(path: Path, strict: bool = True) -> str | None:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    loader = LOADERS.get(suffixes[-1] if suffixes else "")
    if loader is None and strict:
        raise ValueError(f"Cannot read {path}: use .txt, .json, .jsonl or .parquet files (optionally .gz).")
    return loader


def load_corpus(
    source: str | list[str], text_column: str = "text", hub_config: str | None = None, split: str = "train",
    streaming: bool = False,
) -> datasets.Dataset | datasets.IterableDataset:
    files = resolve_files(source)
    if files is None:
        corpus = datasets.load_dataset(source, hub_config, split=split, streaming=streaming)
    else:
        loaders = {_loader(f) for f in files}
        if len(loaders) > 1:
            raise ValueError(f"Corpus files mix formats {sorted(loaders)}: give files of one format per run.")
        data_files = [str(f) for f in files]
        corpus = datasets.load_dataset(loaders.pop(), data_files=data_files, split="train", streaming=streaming)
    columns = corpus.column_names or []
    if text_column not in columns:
        raise ValueError(
            f"The corpus {source!r} has no column {text_column!r} (it has {columns}): set text_column to the "
            f"column that holds the text."
        )
    return corpus.select_columns([text_column])


def load_sources(train_data: list[str], text_column: str = "text", hub_config: str | None = None,
                 streaming: bool = False) -> datasets.Dataset | datasets.IterableDataset:
    """A launcher's `train_data` as one corpus: bundled `data/...` paths resolved, and a lone entry that exists
    nowhere here read as a hub dataset id."""
    return load_corpus(as_source([data_path(source) for source in train_data]), text_column, hub_config,
                       streaming=streaming)


def as_source(sources: list[str]) -> str | list[str]:
    """Several entries, or one that exists here, stay files; a lone entry found nowhere becomes a hub id (a plain
    string, which is how `resolve_files` and `load_corpus` tell a hub id from a missing file)."""
    return sources if len(sources) > 1 or Path(sources[0]).exists() else sources[0]


def read_texts(source: str | list[str], text_column: str = "text", limit: int | None = None,
               hub_config: str | None = None) -> list[str]:
    """The corpus's non-blank texts in order, at most `limit` of them: what a tokenizer trains on, or a measurement
    reads."""
    corpus = load_corpus(source, text_column, hub_config)
    return list(islice((t for t in corpus[text_column] if t and t.strip()), limit))


def tokenize_and_pack(
    corpus: datasets.Dataset | datasets.IterableDataset, tokenizer, max_seq_length: int, text_column: str = "text",
    docs_per_pack: int = 1000, num_proc: int | None = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """Documents (one per row; blank rows skipped) -> rows of `input_ids` + `sequence_ids`, see packing.py,
    and `row_id`, the row's index, which seeds its masks. `num_proc` worker processes tokenize; packing stays in
    one, so the rows do not depend on how many workers there were."""

    def tokenize(batch):
        texts = [text for text in batch[text_column] if text and text.strip()]
        # verbose=False: documents longer than the model are expected here; packing splits them
        return {"input_ids": tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]}

    parallel = {"num_proc": num_proc} if num_proc and num_proc > 1 else {}
    tokens = corpus.map(tokenize, batched=True, remove_columns=[text_column], **parallel)
    pack = partial(pack_documents, max_seq_length=max_seq_length, cls_id=tokenizer.cls_token_id,
                   sep_id=tokenizer.sep_token_id)
    packed = tokens.map(pack, batched=True, batch_size=docs_per_pack, features=packed_features(len(tokenizer)))
    return packed.map(lambda batch, indices: {"row_id": indices}, with_indices=True, batched=True)


def packed_features(vocab_size: int) -> datasets.Features:
    """The narrowest types that hold a packed row's ids: 2 bytes per token id for a vocabulary of up to 65,536, and 2
    per segment index (a row of 8,192 tokens holds at most 2,730 segments of [CLS] token [SEP]), instead of the 8
    bytes each that Python ints would be stored as, so a prepared corpus takes a quarter of the disk and page cache."""
    id_type = "uint16" if vocab_size <= 2**16 else "int32"
    return datasets.Features({"input_ids": datasets.Sequence(datasets.Value(id_type)),
                              "sequence_ids": datasets.Sequence(datasets.Value("int16"))})


def row_lengths(rows: datasets.Dataset):
    """Tokens per packed row, read from the Arrow list offsets (no row becomes Python lists; rows memory-mapped from
    disk stay there)."""
    table = rows.with_format("arrow")[:]
    return pc.list_value_length(table.column("input_ids")).to_numpy(zero_copy_only=False)
