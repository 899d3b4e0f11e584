"""Score finished pretraining runs downstream and draw the GLUE average over pretraining minutes: the from-scratch
comparison's evidence beyond the MLM loss.

    rows = compare_downstream([Path("runs/scratch/briskbert-10"), Path("runs/scratch/bert-10"), ...],
                              evaluation=["--tasks", "sst2,mrpc,stsb,rte,cola", "--data-dir", "data"],
                              plot=Path("docs/from-scratch-glue.png"))

Each run's `final/` is fine-tuned and scored by the evaluation harness (briskbert-evaluate's flags in
`evaluation`, the same for every run) into <run>/downstream_results.json; a run that already has that file is not
scored again, so an interrupted comparison continues where it stopped (delete the file to rescore). Runs are
grouped into one line per model (model type and preset from summary.json), each point one run at its training
minutes. The plot needs matplotlib (`pip install briskbert[plots]`); the JSON beside it is written either way.
"""

import json
import sys
from pathlib import Path

from ..evaluation.harness import evaluate_config, evaluate_model
from ..evaluation.results import main_scores
from .compare import load_run

RESULTS = "downstream_results.json"


def score_run(folder: Path, evaluation: list[str]) -> dict:
    results_file = folder / RESULTS
    if not results_file.is_file():
        if not (folder / "final" / "config.json").is_file():
            raise SystemExit(f"{folder} has no final/ model: the run did not finish. Resume it with the same "
                             f"briskbert-pretrain command plus --resume, then compare again.")
        # the run's own flags first: evaluation may end with `--` and the flags for every fine-tuning run
        config, passthrough = evaluate_config(["--model", str(folder / "final"), "--output", str(results_file),
                                               "--work-dir", str(folder / "downstream_runs"), *evaluation])
        evaluate_model(config, passthrough)
    return json.loads(results_file.read_text())


def compare_downstream(folders: list[Path], evaluation: list[str], plot: Path | None = None) -> list[dict]:
    """One row per run: its model, pretraining minutes, final eval loss, GLUE average and per-task main metric."""
    rows = []
    for folder in folders:
        run = load_run(folder)
        results = score_run(folder, evaluation)
        rows.append({
            "model": run["name"], "folder": str(folder), "train_minutes": run["train_seconds"] / 60,
            "steps": run["steps"], "tokens_seen": run["tokens_seen"], "final_eval_loss": run["final_eval_loss"],
            "glue_average": results["glue_average"], "glue_average_tasks": results["glue_average_tasks"],
            "finetune_seconds": results["wall_seconds"], "seeds": results["seeds"], "skipped": results["skipped"],
            "tasks": main_scores(results),
        })
    print_rows(rows)
    if plot:
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.with_suffix(".json").write_text(json.dumps({"evaluation_flags": evaluation, "runs": rows}, indent=2))
        try:
            plot_rows(rows, plot)
        except ImportError:
            print("matplotlib is not installed (pip install 'briskbert[plots]'): the plot is not drawn",
                  file=sys.stderr)
        print(f"wrote {plot.with_suffix('.json')}")
    return rows


def print_rows(rows: list[dict]) -> None:
    tasks = list(rows[0]["tasks"])
    print("| model | pretraining min | steps | final eval loss | " + " | ".join(tasks) + " | GLUE avg |")
    print("|---|---:|---:|---:|" + "---:|" * (len(tasks) + 1))
    for row in rows:
        spread = len(row["seeds"]) > 1
        cells = [f"{row['tasks'][t]['mean']:.3f}" + (f" ± {row['tasks'][t]['std']:.3f}" if spread else "")
                 for t in tasks]
        average = "-" if row["glue_average"] is None else f"{row['glue_average']:.3f}"
        print(f"| {row['model']} | {row['train_minutes']:.1f} | {row['steps']} | {row['final_eval_loss']:.3f} | "
              + " | ".join(cells) + f" | {average} |")


def plot_rows(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (average, loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    for model in dict.fromkeys(row["model"] for row in rows):
        points = sorted((r["train_minutes"], r["glue_average"], r["final_eval_loss"])
                        for r in rows if r["model"] == model)
        average.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=model)
        loss.plot([p[0] for p in points], [p[2] for p in points], marker="o", label=model)
    tasks = ", ".join(rows[0]["glue_average_tasks"])
    average.set_ylabel(f"GLUE average ({tasks})")
    # the whole score range, so two models at chance do not look a zoomed-in world apart
    average.set_ylim(min([0.0] + [r["glue_average"] for r in rows if r["glue_average"] is not None]), 1.0)
    loss.set_ylabel("final held-out MLM loss (15% masking)")
    for axis in (average, loss):
        axis.set_xlabel("pretraining wall-clock (minutes, evaluation excluded)")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"wrote {path}")
