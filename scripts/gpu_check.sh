#!/usr/bin/env bash
# The prepared check of BriskBERT's CUDA paths: one run on a single-GPU machine, under 8 minutes.
#
#   bash scripts/gpu_check.sh OUT_DIR            # on the GPU machine, from the repository root
#   bash scripts/gpu_check.sh OUT_DIR --cpu      # the same stages at tiny sizes on a CPU (what the test suite runs)
#
# Stages, each timed and recorded in OUT_DIR/gpu_check.json (the log is OUT_DIR/gpu_check.log):
#   1. install: what the machine lacks (datasets, evaluate, ... and BriskBERT itself, no dependencies) from wheels
#      carried beside this script in $WHEELS (default scripts/wheels/, filled by `make gpu-wheels`), never from an
#      index;
#   2. cuda-tests: the CUDA tests (sdpa and flex forward and backward against eager, flash-attn varlen with ALiBi
#      slopes, or skipped with the reason when no flash-attn wheel is at hand), as JUnit XML;
#   3. benchmark: base preset, seq 128, bf16, inference and training, against HF BertModel and ModernBertModel, with
#      MFU against the measured bf16 matmul peak;
#   4. pretrain: 100 steps of `base` on packed rows, bf16 autocast (the low-precision LayerNorm), fused AdamW,
#      FlexAttention's ALiBi score_mod and document mask; tokens/s and MFU from its metrics;
#   5. fsdp: hub_configs/accelerate/fsdp-8gpu.yaml on this machine's one GPU (FSDP2, sharded state dict): 20 steps
#      with a checkpoint at 10 and 20, then a resume from 10 that must repeat steps 11-20 bit for bit, a sharded
#      checkpoint (pytorch_model_fsdp_0/*.distcp) and a final/ of BriskBERT's own code. With --cpu, where accelerate
#      has no FSDP, the stage checks that the launcher refuses the config instead of running it as DDP.
# A stage that fails is recorded with its exit status and the next one still runs; the script exits non-zero if any
# stage failed.
set -uo pipefail

OUT=${1:?usage: scripts/gpu_check.sh OUT_DIR [--cpu]}
MODE=${2:-gpu}
HERE=$(cd "$(dirname "$0")" && pwd)
WHEELS=${WHEELS:-$HERE/wheels}
PY=${PYTHON:-python}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec > >(tee "$OUT/gpu_check.log") 2>&1

if [ "$MODE" = "--cpu" ]; then
    DEVICE=cpu PRESET=tiny STEPS=3 BATCH=8 BENCH_BATCHES=1 REPEATS=1 DTYPE=fp32 ATTN=sdpa BACKENDS=sdpa PRECISION=no
else
    DEVICE=cuda PRESET=base STEPS=100 BATCH=128 BENCH_BATCHES=8 REPEATS=3 DTYPE=bf16 ATTN=flex_attention BACKENDS=sdpa,flex_attention PRECISION=bf16
fi
STAGES="$OUT/stages.jsonl"
: > "$STAGES"
FAILED=0

stage() {  # stage NAME COMMAND...: run it, record {name, status, seconds}
    local name=$1 start status
    shift
    echo "=== $name: $*"
    start=$(date +%s%N)
    "$@"
    status=$?
    printf '{"stage": "%s", "status": %d, "seconds": %d.%d}\n' "$name" "$status" \
        $(( ($(date +%s%N) - start) / 1000000000 )) $(( ($(date +%s%N) - start) / 100000000 % 10 )) >> "$STAGES"
    [ "$status" -eq 0 ] || FAILED=1
    return 0
}

install_missing() {
    local missing
    missing=$($PY - <<'EOF'
import importlib.util
needed = ["datasets", "evaluate", "seqeval", "sklearn", "scipy", "yaml", "jinja2", "tensorboard", "onnx"]
print(" ".join(n for n in needed if importlib.util.find_spec(n) is None))
EOF
)
    if [ -n "$missing" ]; then
        echo "missing: $missing; installing from $WHEELS"
        [ -d "$WHEELS" ] || { echo "no wheel folder $WHEELS: carry the wheels of: $missing"; return 1; }
        $PY -m pip install -q --no-index --find-links "$WHEELS" $(echo "$missing" | sed 's/sklearn/scikit-learn/; s/yaml/pyyaml/') || return 1
    fi
    $PY -c "import briskbert" 2>/dev/null || $PY -m pip install -q --no-deps --no-build-isolation -e "$HERE/.." || return 1
    $PY -c "import flash_attn" 2>/dev/null || $PY -m pip install -q --no-index --find-links "$WHEELS" flash-attn 2>/dev/null \
        || echo "no flash-attn wheel in $WHEELS: its tests skip with that reason"
    return 0
}

cuda_tests() {
    $PY -m pytest -p no:cacheprovider -q -rs tests/test_attention.py tests/test_bert_options.py -k "cuda" \
        --junitxml "$OUT/cuda-tests.xml"
    local status=$?
    [ "$status" -eq 5 ] && [ "$DEVICE" = cpu ] && return 0  # none collected: on a CPU every CUDA test deselects/skips
    return $status
}

benchmark() {
    $PY -m briskbert.scripts.benchmark --device "$DEVICE" --preset "$PRESET" --max-seq-length 128 --dtypes "$DTYPE" \
        --modes inference,train --baselines bert,modernbert --backends "$BACKENDS" --num-batches "$BENCH_BATCHES" \
        --repeats "$REPEATS" --no-memory --output "$OUT/benchmark.json"
}

pretrain() {
    $PY -m briskbert.scripts.pretrain --preset "$PRESET" --tokenizer data/tokenizer --train-data data/corpus/en \
        --max-steps "$STEPS" --micro-batch-size "$BATCH" --max-seq-length 128 --mixed-precision "$PRECISION" \
        --attn-implementation "$ATTN" --log-every 10 --eval-every "$STEPS" --save-every 100000 --eval-rows 16 \
        --output-dir "$OUT/pretrain"
}

fsdp() {
    local run="$OUT/fsdp" args launch
    args=(--preset "$PRESET" --tokenizer data/tokenizer --train-data data/corpus/en --max-steps 20 --save-every 10
          --keep-checkpoints 2 --micro-batch-size "$BATCH" --max-seq-length 128 --log-every 1 --eval-every 10
          --eval-rows 16 --hidden-dropout-prob 0 --output-dir "$run")
    launch=($PY -m accelerate.commands.launch --config_file hub_configs/accelerate/fsdp-8gpu.yaml --num_processes 1
            --mixed_precision "$PRECISION" -m briskbert.scripts.pretrain)
    if [ "$DEVICE" = cpu ]; then
        "${launch[@]}" "${args[@]}" > "$OUT/fsdp-refused.log" 2>&1 && { echo "FSDP on CPU was not refused"; return 1; }
        grep -q "accelerate runs FSDP on GPUs only" "$OUT/fsdp-refused.log"
        return $?
    fi
    "${launch[@]}" "${args[@]}" || return 1
    ls "$run"/checkpoints/step_00000010/pytorch_model_fsdp_0/*.distcp || { echo "no sharded checkpoint"; return 1; }
    cp "$run/metrics.jsonl" "$OUT/fsdp-uninterrupted.jsonl"
    rm -rf "$run/checkpoints/step_00000020" "$run/final"
    "${launch[@]}" "${args[@]}" --resume || return 1
    $PY - "$run" "$OUT/fsdp-uninterrupted.jsonl" <<'EOF'
import json, sys
from pathlib import Path
run, before = Path(sys.argv[1]), Path(sys.argv[2])
curve = lambda path: [json.loads(line)["loss"] for line in path.read_text().splitlines()]
assert curve(run / "metrics.jsonl") == curve(before), "the resumed FSDP run left the uninterrupted curve"
assert not list((run / "final").glob("_fsdp*")), "torch's FSDP modules were saved as the model's code"
from transformers import AutoModelForMaskedLM
AutoModelForMaskedLM.from_pretrained(run / "final", trust_remote_code=True)
print("fsdp: sharded checkpoint, bit-for-bit resume, final/ loads")
EOF
}

cd "$HERE/.."
stage install install_missing
stage cuda-tests cuda_tests
stage benchmark benchmark
stage pretrain pretrain
stage fsdp fsdp

$PY - "$OUT" "$MODE" <<'EOF'
import json, sys
from pathlib import Path
out, mode = Path(sys.argv[1]), sys.argv[2]
record = {"mode": "cpu" if mode == "--cpu" else "gpu",
          "stages": [json.loads(line) for line in (out / "stages.jsonl").read_text().splitlines()]}
try:
    import torch
    record["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    record["torch"] = torch.__version__
except Exception as error:  # the summary is written whatever broke
    record["device_error"] = repr(error)
bench = out / "benchmark.json"
if bench.exists():
    rows = json.loads(bench.read_text())["results"]
    record["benchmark"] = [{k: row.get(k) for k in ("model", "mode", "dtype", "real_tokens_per_s", "ratio_vs_bert", "mfu")}
                           for row in rows]
    for mode_name in ("inference", "train"):
        mine = [r for r in rows if r["mode"] == mode_name and r["model"].startswith("briskbert")]
        modern = next((r for r in rows if r["mode"] == mode_name and r["model"] == "modernbert"), None)
        if mine and modern:
            best = max(mine, key=lambda r: r["real_tokens_per_s"])
            record[f"{mode_name}_vs_modernbert"] = best["real_tokens_per_s"] / modern["real_tokens_per_s"]
metrics = out / "pretrain" / "metrics.jsonl"
if metrics.exists():
    train = [json.loads(line) for line in metrics.read_text().splitlines() if '"mfu"' in line]
    steady = train[1:] or train  # the first window holds compilation and warm-up
    if steady:
        record["pretrain"] = {"steps": train[-1].get("step"), "tokens_per_s": sum(r["tokens_per_s"] for r in steady) / len(steady),
                              "mfu": sum(r["mfu"] for r in steady) / len(steady)}
(out / "gpu_check.json").write_text(json.dumps(record, indent=2))
print(json.dumps(record, indent=2))
EOF
exit $FAILED
