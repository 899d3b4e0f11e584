"""Compare pretraining runs by wall-clock: eval MLM loss over training time, throughput, MFU, and how long the
first run took to reach the other's final eval loss.

    comparisons = compare_runs([Path("runs/briskbert-mini"), Path("runs/bert-mini")], plot=Path("docs/curve.png"))

Reads each run's metrics.jsonl and summary.json (written by briskbert-pretrain); times are training seconds,
evaluation excluded. Writes the plot (needs matplotlib: `pip install briskbert[plots]`) and a comparison JSON next
to it.
"""

import json
from pathlib import Path


def load_run(folder: Path) -> dict:
    metrics_file = folder / "metrics.jsonl"
    if not metrics_file.is_file():
        raise SystemExit(f"{folder} has no metrics.jsonl: pass the --output-dir of a briskbert-pretrain run.")
    records = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    evals = [(r["train_seconds"], r["eval_loss"]) for r in records if "eval_loss" in r]
    if not evals:
        raise SystemExit(f"{folder} logged no eval_loss: run with eval_every smaller than max_steps.")
    summary_file = folder / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    return {
        "name": summary.get("model_type", folder.name) + "-" + str(summary.get("preset", "")),
        "folder": str(folder),
        "evals": evals,
        "steps": records[-1]["step"],
        "tokens_seen": records[-1]["tokens_seen"],
        "train_seconds": records[-1]["train_seconds"],
        "tokens_per_s": records[-1]["tokens_seen"] / records[-1]["train_seconds"],
        "mean_mfu": sum(r["mfu"] for r in records) / len(records),
        "final_eval_loss": evals[-1][1],
        "parameters": summary.get("parameters"),
    }


def seconds_to_reach(evals: list[tuple[float, float]], target: float) -> float | None:
    """Training seconds at which the eval loss first reaches `target` (linear between eval points)."""
    previous = None
    for seconds, loss in evals:
        if loss <= target:
            if previous is None or previous[1] == loss:
                return seconds
            (s0, l0) = previous
            return s0 + (seconds - s0) * (l0 - target) / (l0 - loss)
        previous = (seconds, loss)
    return None


def compare_runs(folders: list[Path], plot: Path | None = None) -> list[dict]:
    """Print the runs side by side and how long the first took to reach each other's final eval loss; with `plot`,
    draw eval loss over training minutes and write the numbers to a JSON beside it."""
    runs = [load_run(folder) for folder in folders]

    print(f"{'run':22} {'params':>8} {'steps':>6} {'tokens':>10} {'train min':>9} {'tok/s':>8} {'MFU':>6} "
          f"{'final eval':>10}")
    for run in runs:
        params = f"{run['parameters'] / 1e6:.1f}M" if run["parameters"] else "-"
        print(f"{run['name']:22} {params:>8} {run['steps']:>6} {run['tokens_seen']:>10,} "
              f"{run['train_seconds'] / 60:>9.1f} {run['tokens_per_s']:>8.0f} {run['mean_mfu']:>6.1%} "
              f"{run['final_eval_loss']:>10.3f}")
    first = runs[0]
    comparisons = []
    for other in runs[1:]:
        reached = seconds_to_reach(first["evals"], other["final_eval_loss"])
        comparison = {
            "run": first["name"], "baseline": other["name"], "baseline_final_eval_loss": other["final_eval_loss"],
            "baseline_seconds": other["train_seconds"], "seconds_to_reach_baseline_final": reached,
            "fraction_of_baseline_time": None if reached is None else reached / other["train_seconds"],
            "throughput_ratio": first["tokens_per_s"] / other["tokens_per_s"],
        }
        comparisons.append(comparison)
        when = "never" if reached is None else f"after {reached / 60:.1f} min ({reached / other['train_seconds']:.0%} of the baseline's time)"
        print(f"{first['name']} reached {other['name']}'s final eval loss {other['final_eval_loss']:.3f} {when}; "
              f"throughput {comparison['throughput_ratio']:.2f}x")

    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(7, 4.5))
        for run in runs:
            minutes = [s / 60 for s, _ in run["evals"]]
            axis.plot(minutes, [loss for _, loss in run["evals"]], marker="o", markersize=3, label=run["name"])
        axis.set_xlabel("training wall-clock (minutes, evaluation excluded)")
        axis.set_ylabel("eval MLM loss (15% masking, held-out rows)")
        axis.grid(alpha=0.3)
        axis.legend()
        figure.tight_layout()
        plot.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(plot, dpi=120)
        (plot.with_suffix(".json")).write_text(json.dumps({"runs": runs, "comparisons": comparisons}, indent=2))
        print(f"wrote {plot} and {plot.with_suffix('.json')}")
    return comparisons
