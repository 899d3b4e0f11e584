"""The figures docs/scale.md scales up from, measured on this machine: the data preparation's rate per worker process,
the pretraining launcher's start-up time on prepared and on raw data (in fresh processes, as a user starts them) and
its peak resident memory at two corpus sizes 10x apart, the tokens/s one loader process feeds from a prepared folder,
and the size and write time of a checkpoint of the preset a GPU run would train. What `scripts/measure_scale.py` runs.

Every process gets an empty datasets cache, so nothing is reused between them: a raw-data start-up here is a first
start (a later one, on the same corpus and tokenizer, finds the tokenized rows in the cache). The corpus is written
once as plain text (its non-blank lines), whole and every tenth text, so both sizes are the same kind of text.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import torch
from transformers import AutoTokenizer

from ...modeling import BriskBertConfig, BriskBertForMaskedLM
from ..data.corpus import read_texts
from ..data.masking import MLMMasking
from ..data.packing import collate_rows
from ..data.prepared import load_prepared
from ..file_integrity import folder_bytes
from ..measuring import cpu_description
from ..pretraining.checkpointing import save_checkpoint
from ..pretraining.loop import PretrainConfig, TrainerState, mask_seeds, training_batches
from ..resources import data_path
from ..training import make_accelerator
from .records import write_record


@dataclass
class ScaleConfig:
    corpus: list[str] = field(default_factory=lambda: ["data/corpus/en"])  # files or folders of raw text
    tokenizer: str = "data/tokenizer"
    recipe: str = "tiny-cpu"  # the pretraining recipe whose start-up and memory are measured
    max_seq_length: int = 128
    workers: list[int] = field(default_factory=lambda: [1, 2])  # preparation's worker processes, each measured
    pretrain_steps: int = 5
    repeats: int = 3  # starts of each pretraining run; the median start-up is reported
    smaller_fraction: float = 0.1  # the second corpus size: this share of the corpus's texts
    loader_batch_size: int = 128  # rows per batch when measuring what one loader process feeds
    checkpoint_preset: str = "base"  # whose checkpoint (weights + AdamW state, through accelerate) is written and timed
    output_dir: str = "outputs/scale"


def measure_scale(config: ScaleConfig) -> dict:
    work = Path(config.output_dir)
    work.mkdir(parents=True, exist_ok=True)
    texts = read_texts([data_path(source) for source in config.corpus])
    corpora = {"full": work / "corpus-full.txt", "tenth": work / "corpus-tenth.txt"}
    corpora["full"].write_text("\n".join(texts) + "\n", encoding="utf-8")
    # every k-th text, not the first ones: the corpus's files differ in text length, so a prefix is not a tenth
    corpora["tenth"].write_text("\n".join(texts[::round(1 / config.smaller_fraction)]) + "\n", encoding="utf-8")

    preparations = []
    for size, workers in [("full", n) for n in config.workers] + [("tenth", max(config.workers))]:
        folder = work / f"prepared-{size}-{workers}proc"
        run_job(["briskbert.scripts.prepare_data", "--train-data", str(corpora[size]), "--tokenizer", config.tokenizer,
                 "--max-seq-length", str(config.max_seq_length), "--num-proc", str(workers), "--output", str(folder),
                 "--overwrite"])
        record = json.loads((folder / "briskbert_prepared.json").read_text())
        preparations.append({"corpus": size, "megabytes": corpora[size].stat().st_size / 1e6, "workers": workers,
                             "folder": str(folder), **{key: record[key] for key in (
                                 "rows", "tokens", "packing_efficiency", "seconds", "tokens_per_s_per_process")}})

    runs = []
    for size in ("full", "tenth"):
        prepared = next(p["folder"] for p in preparations if p["corpus"] == size)
        for data, train_data in (("prepared", prepared), ("raw", str(corpora[size]))):
            summaries = []
            for repeat in range(config.repeats):  # start-up varies by seconds between identical starts
                output = work / f"pretrain-{size}-{data}-{repeat}"
                shutil.rmtree(output, ignore_errors=True)
                run_job(["briskbert.scripts.pretrain", "--config", config.recipe, "--tokenizer", config.tokenizer,
                         "--train-data", train_data, "--max-seq-length", str(config.max_seq_length), "--max-steps",
                         str(config.pretrain_steps), "--save-every", "1000000", "--eval-every", "1000000",
                         "--log-every", "1000000", "--peak-tflops", "1", "--output-dir", str(output)])
                summaries.append(json.loads((output / "summary.json").read_text()))
            startups = sorted(summary["startup_seconds"] for summary in summaries)
            runs.append({"corpus": size, "megabytes": corpora[size].stat().st_size / 1e6, "data": data,
                         "startup_seconds": statistics.median(startups), "startup_seconds_each": startups,
                         "peak_resident_mb": max(summary["peak_resident_mb"] for summary in summaries)})
    libraries = libraries_resident_mb()
    loader = loader_rate(next(p["folder"] for p in preparations if p["corpus"] == "full"), config)
    checkpoint = checkpoint_write(work / "checkpoint", config.checkpoint_preset)
    print_tables(preparations, runs, loader, checkpoint)
    print(f"a process that only imports the pretraining launcher: peak RSS {libraries:,.0f} MB")
    return write_record(str(work / "scale.json"), "", {"cpu": cpu_description(), "config": asdict(config),
                                                       "cpu_count": os.cpu_count()},
                        runs, preparations=preparations, loader=loader, checkpoint=checkpoint,
                        libraries_resident_mb=libraries)


def libraries_resident_mb() -> float:
    """Peak resident memory of a fresh process that imports the pretraining launcher and nothing more: the share of a
    run's memory that is torch, transformers, datasets and accelerate themselves."""
    probe = ("import briskbert.trainers.pretraining.loop; from briskbert.trainers.measuring import peak_resident_mb; "
             "print(peak_resident_mb())")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return float(result.stdout.split()[-1])


def loader_rate(folder: str, config: ScaleConfig, batches: int = 100) -> dict:
    """Tokens/s one process feeds from a prepared folder, as the launcher reads it: the sampler's rows read from the
    memory map and collated into padded batches, then masked (which runs in the training process)."""
    tokenizer = AutoTokenizer.from_pretrained(data_path(config.tokenizer), trust_remote_code=True)
    rows, _ = load_prepared(folder, tokenizer, config.max_seq_length)
    run = PretrainConfig(tokenizer=config.tokenizer, micro_batch_size=config.loader_batch_size, seed=0)
    loader = training_batches(rows, run, TrainerState(), 0, 1, 1,
                              partial(collate_rows, pad_token_id=tokenizer.pad_token_id))
    masking = MLMMasking.from_tokenizer(tokenizer, config.max_seq_length)
    start = time.perf_counter()
    read = [next(loader) for _ in range(batches)]
    reading = time.perf_counter() - start
    start = time.perf_counter()
    for step, batch in enumerate(read):
        masking(batch["input_ids"], batch["attention_mask"], 0.3, mask_seeds(0, step, rows=batch["row_id"]))
    masking_seconds = time.perf_counter() - start
    tokens = sum(int(batch["attention_mask"].sum()) for batch in read)
    return {"rows_per_batch": config.loader_batch_size, "batches": batches, "tokens": tokens,
            "read_and_collate_tokens_per_s": tokens / reading, "masking_tokens_per_s": tokens / masking_seconds,
            "tokens_per_s": tokens / (reading + masking_seconds)}


def run_job(module_and_args: list[str]) -> None:
    """One launcher in a fresh process with an empty datasets cache of its own."""
    with tempfile.TemporaryDirectory(prefix="datasets-cache-") as cache:
        # one core per worker: the fast tokenizer would otherwise spread one process's batches over threads, and the
        # figure per worker would count them as one
        env = {**os.environ, "HF_DATASETS_CACHE": cache, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        result = subprocess.run([sys.executable, "-m", *module_and_args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{module_and_args[0]} exited {result.returncode}:\n{result.stderr[-4000:]}")


def checkpoint_write(folder: Path, preset: str) -> dict:
    """Bytes and seconds of one save_checkpoint of `preset` (BriskBertForMaskedLM, AdamW with its moments filled), the
    launcher's own atomic write, in this process."""
    accelerator = make_accelerator(folder, "no")
    model = BriskBertForMaskedLM(BriskBertConfig.from_preset(preset, vocab_size=30528))
    optimizer = torch.optim.AdamW(model.parameters())
    for parameter in model.parameters():  # one step creates AdamW's moments, as a run's first step does
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    model, optimizer = accelerator.prepare(model, optimizer)
    start = time.perf_counter()
    saved = save_checkpoint(accelerator, folder, 1, {"step": 1}, keep=1)
    seconds = time.perf_counter() - start
    size = folder_bytes(saved)
    shutil.rmtree(folder, ignore_errors=True)
    return {"preset": preset, "parameters": sum(p.numel() for p in model.parameters()), "bytes": size,
            "seconds": seconds, "megabytes_per_s": size / 2**20 / seconds}


def print_tables(preparations: list[dict], runs: list[dict], loader: dict, checkpoint: dict) -> None:
    print(f"\n{'corpus':>7} {'MB':>6} {'workers':>7} {'rows':>8} {'tokens':>10} {'seconds':>8} {'tok/s/proc':>11}")
    for p in preparations:
        print(f"{p['corpus']:>7} {p['megabytes']:6.1f} {p['workers']:7d} {p['rows']:8,d} {p['tokens']:10,d} "
              f"{p['seconds']:8.1f} {p['tokens_per_s_per_process']:11,.0f}")
    print(f"\n{'corpus':>7} {'MB':>6} {'data':>9} {'start-up s (median, each)':>26} {'peak RSS MB':>11}")
    for r in runs:
        each = ", ".join(f"{seconds:.1f}" for seconds in r["startup_seconds_each"])
        print(f"{r['corpus']:>7} {r['megabytes']:6.1f} {r['data']:>9} {r['startup_seconds']:6.1f} ({each}) "
              f"{r['peak_resident_mb']:11.0f}")
    print(f"\none loader process, batches of {loader['rows_per_batch']} rows: read + collate "
          f"{loader['read_and_collate_tokens_per_s']:,.0f} tokens/s, masking {loader['masking_tokens_per_s']:,.0f} "
          f"tokens/s, together {loader['tokens_per_s']:,.0f} tokens/s")
    print(f"checkpoint of {checkpoint['preset']} ({checkpoint['parameters']:,} parameters): "
          f"{checkpoint['bytes'] / 2**30:.2f} GiB in {checkpoint['seconds']:.1f} s ({checkpoint['megabytes_per_s']:,.0f} MiB/s)")
