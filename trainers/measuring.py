"""Honest speed numbers: useful FLOPs per step, model FLOPs utilisation against a measured matmul peak, and the one
interleaved timing loop every benchmark uses (with the CPU steal of a shared machine beside each time).

"Useful" counts only what the work needs, whatever the model actually computes: real tokens (no padding),
attention inside each sequence or packed segment (not across the row), and the MLM decoder on masked
tokens only. A padded model that computes more gets no credit for it, so MFU compares like with like.
"""

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
import torch
import torch.nn.functional as F


def segment_lengths(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Lengths of every attention segment in a batch: packed segments when `sequence_ids` is given, else rows."""
    real = batch["attention_mask"].bool()
    if "sequence_ids" not in batch:
        return real.sum(1)
    rows, length = real.shape
    # a segment is identified by (row, segment id); ids within a row are small non-negative integers
    keys = torch.arange(rows, device=real.device)[:, None] * (length + 1) + batch["sequence_ids"]
    counts = torch.bincount(keys[real])
    return counts[counts > 0]


def step_flops(hidden_size: int, intermediate_size: int, num_layers: int, vocab_size: int, glu: bool,
               lengths: torch.Tensor, masked_tokens: int, train: bool = True, encoder_frozen: bool = False) -> float:
    """Useful FLOPs of a forward (and backward, x3, when `train`) over segments of `lengths` tokens; with
    `encoder_frozen` (an MLM head warm-up) only the head is back-propagated through."""
    mlp = (6 if glu else 4) * hidden_size * intermediate_size
    lengths = lengths.double()
    tokens = lengths.sum().item()
    attention_scores = 4 * hidden_size * (lengths**2).sum().item()  # q k^T and p v
    encoder = num_layers * (tokens * (8 * hidden_size * hidden_size + mlp) + attention_scores)
    head = masked_tokens * (2 * hidden_size * hidden_size + 2 * hidden_size * vocab_size)  # MLM head
    if not train:
        return encoder + head
    return (encoder if encoder_frozen else 3 * encoder) + 3 * head


def matmul_peak(device: str = "cpu", dtype: torch.dtype = torch.float32, size: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of a square nn.Linear-shaped matmul (x @ W^T) on this device: the roof that MFU is measured
    against. Linear's layout, not `a @ b`: on a CPU without native bf16 a bf16 `a @ b` takes a path an order of
    magnitude slower than Linear's (docs/speed.md, "Tunings measured behind the code"), which is no roof for a model."""
    x = torch.randn(size, size, device=device, dtype=dtype)
    weight = torch.randn(size, size, device=device, dtype=dtype)
    best, sync = float("inf"), device_sync(device)
    for _ in range(repeats + 1):
        sync()
        start = time.perf_counter()
        F.linear(x, weight)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def device_sync(device: str) -> Callable[[], None]:
    """What waits for a device's queued work before a clock is read: CUDA runs asynchronously, the CPU does not."""
    return torch.cuda.synchronize if device.startswith("cuda") else lambda: None


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 / AMX); without it bf16 matmuls are emulated and
    run several times slower than fp32, so bf16 figures from such a CPU say little about bf16 hardware."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


@dataclass
class Timings:
    """One contender's repetitions: wall seconds each, and the CPU seconds stolen by other tenants meanwhile."""

    seconds: list[float] = field(default_factory=list)
    stolen: list[float] = field(default_factory=list)  # empty where the kernel has no steal counter

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def steal_fraction(self, cpus: int) -> float | None:
        """The share of the machine's CPU time that went to other tenants while this contender ran."""
        return sum(self.stolen) / (sum(self.seconds) * cpus) if self.stolen else None


def time_interleaved(contenders: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None] = lambda: None,
                     after_round: Callable[[], None] | None = None) -> dict[str, Timings]:
    """Time each contender's call `repeats` times, one repetition of each in turn, so that a drift in the machine's
    speed (another tenant, thermal state) hits every contender alike; report the median, never one run. `sync`
    waits for queued device work (CUDA), before the clock starts and before it stops. `after_round` runs between
    rounds, outside the timed part. Warm-up is the caller's: what it needs (compiling, allocating) differs."""
    timings = {name: Timings() for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            sync()
            stolen_before = stolen_cpu_seconds()
            start = time.perf_counter()
            run()
            sync()
            seconds = time.perf_counter() - start
            timings[name].seconds.append(seconds)
            if stolen_before is not None:
                # /proc/stat counts whole clock ticks (10 ms): a call shorter than a tick can be charged a whole one,
                # more than the CPUs had in that time, so a repetition's steal is held to what was there to steal
                stolen = stolen_cpu_seconds() - stolen_before
                timings[name].stolen.append(min(max(stolen, 0.0), seconds * (os.cpu_count() or 1)))
        if after_round is not None:
            after_round()
    return timings


def stolen_cpu_seconds() -> float | None:
    """CPU time the hypervisor gave to other tenants so far (steal, summed over this machine's CPUs), from Linux's
    /proc/stat; None where it is not available. On a shared VM it is what makes one repetition run far slower than another."""
    try:
        with open("/proc/stat") as handle:
            fields = handle.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def seconds_since_process_start() -> float:
    """Wall seconds since this process started, imports included: what a user waits before a run's first step."""
    return time.time() - psutil.Process().create_time()


def peak_resident_mb() -> float:
    """This process's peak resident memory so far (psutil's peak_wset on Windows, the kernel's ru_maxrss elsewhere)."""
    try:
        import resource
    except ImportError:  # Windows
        return psutil.Process().memory_info().peak_wset / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def cpu_description() -> str:
    """The CPU's model name and the vector extensions that decide int8 and bf16 speed (Linux's /proc/cpuinfo), e.g.
    "AMD EPYC (avx2, avx512f, avx512_vnni, avx512_bf16)"; the platform's processor string elsewhere."""
    try:
        with open("/proc/cpuinfo") as handle:
            info = handle.read()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    shown = [flag for flag in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16") if flag in flags]
    return f"{name} ({', '.join(shown)})" if shown else name
