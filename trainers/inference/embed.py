"""Embed a corpus with a BriskBERT (or any sentence-transformers-style folder of one): what briskbert-embed runs.

    config = parse_config(EmbedConfig, ["--model", "m", "--input", "corpus.jsonl", "--output", "emb.npy"])
    embed_corpus(config)

- Input: a .jsonl/.json, .csv, .parquet or .txt file (one text per line), or a dataset on the Hub, read with
  `datasets`; `column` names the text column (a .txt file has only `text`).
- Work is cut into shards of `shard_size` rows in input order. Each shard is sorted by length and cut into
  batches of at most `token_budget` padded tokens (serving systems' token-budget batching), so almost no padding
  is computed, and its embeddings land in `<output>.parts/` under a temporary name that is renamed once whole.
  An interrupted run started again with the same arguments skips the shards that exist. Under
  `accelerate launch` process k takes shards k, k+N, ...; the main process assembles them.
- The output (.npy: float32 [rows, dim] in input order; .parquet: `row` and `embedding` columns) is written
  under a temporary name and renamed when complete, so a partial file never passes for a finished one.
- Pooling is the folder's sentence-transformers Pooling (mean, cls or max) and Normalize when it has them, else
  mean pooling over the real tokens; `normalize` forces L2 normalisation on.
- `dtype`: fp32, bf16 (autocast; only where the device runs bf16 natively, else refused), int8 (briskbert.quantize,
  calibrated on the corpus's first texts; CPU) or auto: the fastest of fp32 and native bf16, timed on the first
  batch. Each process runs on its accelerate device (its GPU, else the CPU).
"""

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ...modeling import BriskBertModel
from ..config import raise_problems
from ..conversion.sentence_embeddings import NORMALIZE, POOLING, find_sentence_transformers_model
from ..measuring import cpu_has_native_bf16
from .quantize import quantize

INPUT_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
OUTPUT_FORMATS = (".npy", ".parquet")
DTYPES = ("auto", "fp32", "bf16", "int8")
MANIFEST = "manifest.json"
# default padded tokens per batch, by device type: on a CPU, batches whose activations stay in cache run fastest
# (measured in fp32 and int8: docs/speed.md, "Tunings measured behind the code"); a GPU needs large batches to fill it
TOKEN_BUDGETS = {"cpu": 1024, "cuda": 16384}


@dataclass
class EmbedConfig:
    RENAMED_FIELDS: ClassVar[dict[str, str]] = {"max_length": "max_seq_length"}  # the old name, warned
    model: str  # a saved BriskBERT folder (plain or sentence-transformers layout) or a Hub id
    input: str  # .jsonl/.json/.csv/.parquet/.txt file, or a Hub dataset name
    output: str  # .npy or .parquet
    column: str = "text"  # the text column
    split: str = "train"  # the split to read of a Hub dataset (files have one)
    dtype: str = "auto"  # auto | fp32 | bf16 | int8
    token_budget: int | None = None  # padded tokens per batch (default: TOKEN_BUDGETS for the device)
    max_batch_size: int = 256  # rows per batch, whatever their length
    max_seq_length: int = 512  # truncation, in tokens
    shard_size: int = 4096  # rows per resumable shard
    normalize: bool = False  # L2-normalise even if the folder has no Normalize module
    threads: int | None = None  # torch threads (default: torch's choice)
    progress: bool = True  # a progress bar with tokens/s

    def __post_init__(self):
        check(self)


def check(config: EmbedConfig) -> None:
    """Stops, naming every problem, on a config that cannot run (the config's `__post_init__` calls it)."""
    problems = []
    if config.dtype not in DTYPES:
        problems.append(f"dtype must be one of {DTYPES}, got {config.dtype!r}")
    if Path(config.output).suffix not in OUTPUT_FORMATS:
        problems.append(f"output must end in {' or '.join(OUTPUT_FORMATS)}, got {config.output!r}")
    for name in ("token_budget", "max_batch_size", "max_seq_length", "shard_size"):
        if getattr(config, name) is not None and getattr(config, name) < 1:
            problems.append(f"{name} must be positive, got {getattr(config, name)}")
    if config.token_budget is not None and config.token_budget < config.max_seq_length:
        problems.append(f"token_budget ({config.token_budget}) must hold one row of max_seq_length ({config.max_seq_length})")
    raise_problems("embed", problems)


def read_texts(config: EmbedConfig) -> list[str]:
    """The column's texts, in order; a clear error for a missing file or column and for an empty input."""
    import datasets

    path = Path(config.input)
    if path.suffix in INPUT_FORMATS or path.exists():
        if not path.is_file():
            raise SystemExit(f"embed: {path} does not exist (pass --input with a .jsonl/.csv/.parquet/.txt file or a "
                             f"Hub dataset name).")
        if path.suffix not in INPUT_FORMATS:
            raise SystemExit(f"embed: cannot read {path.suffix!r} files; --input takes {', '.join(INPUT_FORMATS)}.")
        if path.stat().st_size == 0:
            raise SystemExit(f"embed: {path} is empty; there is nothing to embed.")
        builder = INPUT_FORMATS[path.suffix]
        dataset = datasets.load_dataset(builder, data_files=str(path), split="train")
    else:
        dataset = datasets.load_dataset(config.input, split=config.split)
    if len(dataset) == 0:
        raise SystemExit(f"embed: {config.input} has no rows; there is nothing to embed.")
    if config.column not in dataset.column_names:
        raise SystemExit(f"embed: {config.input} has no column {config.column!r}; its columns are "
                         f"{dataset.column_names}. Pass --column with the one that holds the text.")
    texts = list(dataset[config.column])  # datasets' lazy column reads one row per index (~0.1 ms each)
    bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
    if bad is not None:
        raise SystemExit(f"embed: row {bad} of column {config.column!r} is {texts[bad]!r}, not text; fill or drop "
                         f"the rows without text first.")
    return texts


# ---- the model and its pooling


def load_encoder(folder: str):
    """(BriskBertModel, tokenizer, pooling mode, normalize) of a saved folder, plain or sentence-transformers."""
    from transformers import AutoConfig, AutoTokenizer

    root, modules = find_sentence_transformers_model(Path(folder)) if Path(folder).is_dir() else (folder, None)
    config = AutoConfig.from_pretrained(root)
    if config.model_type != "briskbert":
        raise SystemExit(f"embed: {folder} holds a {config.model_type!r} model; convert it first "
                         f"(briskbert-convert --from bert --source {folder} --output <folder>).")
    model = BriskBertModel.from_pretrained(root).eval()
    tokenizer = AutoTokenizer.from_pretrained(root)
    pooling, normalize = "mean", False
    for module in modules or []:
        if module["type"] == POOLING:
            settings = json.loads((Path(folder) / module["path"] / "config.json").read_text())
            modes = [mode for mode in ("cls_token", "mean_tokens", "max_tokens") if settings.get(f"pooling_mode_{mode}")]
            if len(modes) != 1:
                raise SystemExit(f"embed: {folder}'s Pooling module combines {modes or 'no'} modes; embed supports one "
                                 f"of cls, mean or max.")
            pooling = modes[0].split("_")[0]
        elif module["type"] == NORMALIZE:
            normalize = True
        elif module is not modules[0]:
            raise SystemExit(f"embed: {folder} has a {module['type']} module after pooling, which embed does not "
                             f"apply; use sentence-transformers' encode for this model.")
    return model, tokenizer, pooling, normalize


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return hidden.masked_fill(~mask.bool().unsqueeze(-1), torch.finfo(hidden.dtype).min).amax(1)
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


# ---- batching


def token_budget_batches(lengths: list[int], token_budget: int, max_batch_size: int) -> list[list[int]]:
    """Row indices sorted by length, cut so that each batch's rows x longest row stays within the budget."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches, current = [], []
    for index in order:
        longest = lengths[index]  # ascending order: the newest row is the longest
        if current and (len(current) + 1) * longest > token_budget or len(current) == max_batch_size:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


class Embedder:
    """The model at the chosen precision, embedding lists of texts."""

    def __init__(self, model, tokenizer, pooling, normalize, dtype, max_length):
        self.model, self.tokenizer, self.pooling = model, tokenizer, pooling
        self.normalize, self.dtype, self.max_length = normalize, dtype, max_length

    def tokenize(self, texts):
        # ids alone: converting the unused masks and type ids to Python lists took most of the tokenizer's time
        return self.tokenizer(texts, truncation=True, max_length=self.max_length, return_attention_mask=False,
                              return_token_type_ids=False)["input_ids"]

    @torch.inference_mode()
    def embed_ids(self, ids: list[list[int]]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in self.tokenizer.pad({"input_ids": ids}, return_tensors="pt").items()}
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.dtype == "bf16")
        with autocast:
            hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        vectors = pool(hidden.float(), batch["attention_mask"], self.pooling)
        return (F.normalize(vectors, dim=-1) if self.normalize else vectors).cpu()


def choose_dtype(config: EmbedConfig, embedder: Embedder, sample_ids: list[list[int]]) -> str:
    """`auto`: the faster of fp32 and bf16 on one batch of the corpus, bf16 only where the CPU runs it natively."""
    native_bf16 = (torch.cuda.is_bf16_supported() if next(embedder.model.parameters()).is_cuda
                   else cpu_has_native_bf16())
    if config.dtype == "bf16" and not native_bf16:
        raise SystemExit("embed: this CPU has no native bf16 (AVX512-BF16 or AMX), where bf16 is emulated several "
                         "times slower than fp32; use --dtype fp32 or int8 (or auto, which picks for you).")
    if config.dtype != "auto":
        return config.dtype
    if not native_bf16:
        return "fp32"
    timings = {}
    for dtype in ("fp32", "bf16", "fp32", "bf16"):  # the second round is timed; the first warms up
        embedder.dtype = dtype
        start = time.perf_counter()
        embedder.embed_ids(sample_ids)
        timings[dtype] = time.perf_counter() - start
    return min(timings, key=timings.get)


# ---- the job


def shard_ranges(count: int, shard_size: int) -> list[range]:
    return [range(start, min(start + shard_size, count)) for start in range(0, count, shard_size)]


def parts_folder(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


def start_manifest(parts: Path, manifest: dict, resolved_dtype: str) -> None:
    """Open a parts folder for a run: its settings, and the precision its shards are computed in."""
    parts.mkdir(parents=True, exist_ok=True)
    write_atomically(parts / MANIFEST, lambda tmp: tmp.write_text(json.dumps({**manifest,
                                                                              "resolved_dtype": resolved_dtype},
                                                                             indent=2)))


def resume_manifest(parts: Path, manifest: dict) -> str:
    """A parts folder is only resumed by the run that started it: same model, input, rows and settings. Returns the
    precision its shards are computed in: the first run's choice, so that `auto` cannot mix precisions."""
    saved = json.loads((parts / MANIFEST).read_text())
    chosen = saved.pop("resolved_dtype", None)
    if saved != manifest:
        changed = sorted(key for key in manifest if saved.get(key) != manifest[key])
        raise SystemExit(f"embed: {parts} holds shards of another run (it differs in {changed}). Run again with "
                         f"the same arguments to resume it, or delete {parts} to start over.")
    return chosen


def save_array(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as handle:
        np.save(handle, array)


def write_atomically(path: Path, write) -> None:
    """`write(temporary_path)`, then rename onto `path`: readers see no file or the whole file, never a part."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(temporary)
    os.replace(temporary, path)


def shard_path(parts: Path, index: int) -> Path:
    return parts / f"shard-{index:06d}.npy"


def embed_corpus(config: EmbedConfig) -> dict:
    """Embed every row of the input into the output; returns a summary (rows, dim, dtype, tokens/s, resumed)."""
    from accelerate import PartialState
    from tqdm.auto import tqdm

    if config.threads:
        torch.set_num_threads(config.threads)
    # cpu=True without a GPU: the processes `accelerate launch` starts join a gloo group instead of each running alone
    state = PartialState(cpu=torch.accelerator.current_accelerator() is None)
    output = Path(config.output)
    texts = read_texts(config)
    model, tokenizer, pooling, folder_normalizes = load_encoder(config.model)
    embedder = Embedder(model, tokenizer, pooling, folder_normalizes or config.normalize, "fp32", config.max_seq_length)
    if config.dtype == "int8":  # fbgemm's kernels: the CPU
        embedder.model = quantize(model, tokenizer=tokenizer, texts=texts[:256])
    else:  # each process on its own device: its GPU under accelerate launch, else the CPU
        model.to(state.device)
    manifest = {key: value for key, value in asdict(config).items() if key not in ("threads", "progress")}
    manifest.update(rows=len(texts), pooling=pooling, normalize=embedder.normalize)
    parts = parts_folder(output)
    if state.is_main_process and not (parts / MANIFEST).exists():
        start_manifest(parts, manifest, choose_dtype(config, embedder, embedder.tokenize(texts[:64])))
    state.wait_for_everyone()
    embedder.dtype = resume_manifest(parts, manifest)
    shards = shard_ranges(len(texts), config.shard_size)
    token_budget = config.token_budget or max(TOKEN_BUDGETS.get(state.device.type, TOKEN_BUDGETS["cuda"]),
                                              config.max_seq_length)
    mine = [i for i in range(len(shards)) if i % state.num_processes == state.process_index]
    todo = [i for i in mine if not shard_path(parts, i).exists()]
    tokens, start = 0, time.perf_counter()
    bar = tqdm(total=sum(len(shards[i]) for i in todo), unit="rows", disable=not config.progress or not todo,
               desc=f"embed [{state.process_index}]" if state.num_processes > 1 else "embed")
    for index in todo:
        ids = embedder.tokenize([texts[i] for i in shards[index]])
        vectors = None
        for rows in token_budget_batches([len(row) for row in ids], token_budget, config.max_batch_size):
            embedded = embedder.embed_ids([ids[i] for i in rows])
            vectors = np.empty((len(ids), embedded.shape[-1]), dtype=np.float32) if vectors is None else vectors
            vectors[rows] = embedded.numpy()
            tokens += sum(len(ids[i]) for i in rows)
            bar.update(len(rows))
            bar.set_postfix(tokens_per_s=f"{tokens / (time.perf_counter() - start):,.0f}")
        write_atomically(shard_path(parts, index), lambda tmp: save_array(tmp, vectors))
    bar.close()
    seconds = time.perf_counter() - start
    state.wait_for_everyone()
    summary = {"rows": len(texts), "shards": len(shards), "resumed_shards": len(mine) - len(todo),
               "dtype": embedder.dtype, "pooling": pooling, "normalize": embedder.normalize,
               "tokens_per_s": tokens / seconds if tokens else None, "output": str(output)}
    if state.is_main_process:
        embeddings = np.concatenate([np.load(shard_path(parts, i)) for i in range(len(shards))])
        summary["dim"] = int(embeddings.shape[1])
        write_output(output, embeddings)
        for path in parts.iterdir():
            path.unlink()
        parts.rmdir()
    state.wait_for_everyone()
    return summary


def write_output(output: Path, embeddings: np.ndarray) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".npy":
        write_atomically(output, lambda tmp: save_array(tmp, embeddings))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"row": np.arange(len(embeddings)),
                          "embedding": pa.FixedSizeListArray.from_arrays(embeddings.reshape(-1), embeddings.shape[1])})
        write_atomically(output, lambda tmp: pq.write_table(table, tmp))
