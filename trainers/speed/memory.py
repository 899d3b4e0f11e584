"""Peak memory of one contender's step, measured in a fresh process so no other model's allocations count: CUDA's
allocator peak, or on CPU the growth of peak RSS over the resident model and optimizer (glibc told to return large
blocks at once).

    python -m briskbert.trainers.speed.memory '{"name": "bert", "mode": "train", ...}'   # what measure_memory runs
"""

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer

from ..resources import data_path
from .contenders import Runner, build_model, glue_texts, make_batches

TOKENIZER = "data/tokenizer"


def memory_probe(spec: dict) -> float:
    """Run one contender's step twice; return the peak memory (MiB) of the second above its starting point."""
    torch.set_num_threads(spec["threads"])
    tokenizer = AutoTokenizer.from_pretrained(data_path(TOKENIZER))
    texts = glue_texts(Path(spec["data"]), spec["tasks"])
    batch = make_batches(tokenizer, texts, spec["batch_size"], 1, spec["max_seq_length"])[0]
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
        [sys.executable, "-m", __name__, json.dumps(spec)], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        print(f"  memory probe failed for {spec['name']} {spec['mode']} {spec['dtype']}:\n{result.stderr[-2000:]}")
        return None
    return float(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    torch.set_flush_denormal(True)
    print(memory_probe(json.loads(sys.argv[1])))
