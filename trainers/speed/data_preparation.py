"""What preparing the corpus once buys a pretraining run, measured in fresh processes as a user starts them: the
preparation's rate per worker process, the launcher's start-up time on prepared and on raw data, and its peak
resident memory at two corpus sizes 10x apart. What `scripts/measure_data_preparation.py` runs.

Every process gets an empty datasets cache, so nothing is reused between them: a raw-data start-up here is a first
start (a later one, on the same corpus and tokenizer, finds the tokenized rows in the cache). The corpus is written
once as plain text (its non-blank lines), whole and its first tenth, so both sizes are the same kind of text.
"""

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..data.corpus import read_texts
from ..measuring import cpu_description
from ..resources import data_path
from .records import write_record


@dataclass
class DataPreparationConfig:
    corpus: list[str] = field(default_factory=lambda: ["data/corpus/en"])  # files or folders of raw text
    tokenizer: str = "data/tokenizer"
    recipe: str = "tiny-cpu"  # the pretraining recipe whose start-up and memory are measured
    max_seq_length: int = 128
    workers: list[int] = field(default_factory=lambda: [1, 2])  # preparation's worker processes, each measured
    pretrain_steps: int = 5
    smaller_fraction: float = 0.1  # the second corpus size: this share of the corpus's texts
    output_dir: str = "outputs/data-preparation"


def measure_data_preparation(config: DataPreparationConfig) -> dict:
    work = Path(config.output_dir)
    work.mkdir(parents=True, exist_ok=True)
    texts = read_texts([data_path(source) for source in config.corpus])
    corpora = {"full": work / "corpus-full.txt", "tenth": work / "corpus-tenth.txt"}
    corpora["full"].write_text("\n".join(texts) + "\n", encoding="utf-8")
    corpora["tenth"].write_text("\n".join(texts[: int(len(texts) * config.smaller_fraction)]) + "\n",
                                encoding="utf-8")

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
            output = work / f"pretrain-{size}-{data}"
            run_job(["briskbert.scripts.pretrain", "--config", config.recipe, "--tokenizer", config.tokenizer,
                     "--train-data", train_data, "--max-seq-length", str(config.max_seq_length), "--max-steps",
                     str(config.pretrain_steps), "--save-every", "1000000", "--eval-every", "1000000",
                     "--log-every", "1000000", "--peak-tflops", "1", "--output-dir", str(output)])
            summary = json.loads((output / "summary.json").read_text())
            runs.append({"corpus": size, "megabytes": corpora[size].stat().st_size / 1e6, "data": data,
                         "startup_seconds": summary["startup_seconds"],
                         "peak_resident_mb": summary["peak_resident_mb"]})
    print_tables(preparations, runs)
    return write_record(str(work / "data_preparation.json"), "", {"cpu": cpu_description(), "config": asdict(config),
                                                                  "cpu_count": os.cpu_count()},
                        runs, preparations=preparations)


def run_job(module_and_args: list[str]) -> None:
    """One launcher in a fresh process with an empty datasets cache of its own."""
    with tempfile.TemporaryDirectory(prefix="datasets-cache-") as cache:
        env = {**os.environ, "HF_DATASETS_CACHE": cache, "HF_HUB_OFFLINE": "1"}
        result = subprocess.run([sys.executable, "-m", *module_and_args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{module_and_args[0]} exited {result.returncode}:\n{result.stderr[-4000:]}")


def print_tables(preparations: list[dict], runs: list[dict]) -> None:
    print(f"\n{'corpus':>7} {'MB':>6} {'workers':>7} {'rows':>8} {'tokens':>10} {'seconds':>8} {'tok/s/proc':>11}")
    for p in preparations:
        print(f"{p['corpus']:>7} {p['megabytes']:6.1f} {p['workers']:7d} {p['rows']:8,d} {p['tokens']:10,d} "
              f"{p['seconds']:8.1f} {p['tokens_per_s_per_process']:11,.0f}")
    print(f"\n{'corpus':>7} {'MB':>6} {'data':>9} {'start-up s':>10} {'peak RSS MB':>11}")
    for r in runs:
        print(f"{r['corpus']:>7} {r['megabytes']:6.1f} {r['data']:>9} {r['startup_seconds']:10.1f} "
              f"{r['peak_resident_mb']:11.0f}")
