"""The evaluation harness's results: per-task mean and std over seeds, the GLUE average, and the papers' table.

results.json (read by the model-card step; keep it stable):

    {"model": str, "revision": str | null, "created": ISO time, "wall_seconds": float, "seeds": [int],
     "tasks": {"sst2": {"dataset": "nyu-mll/glue", "config": "sst2", "split": "validation",
                        "source": "<data_dir>/glue/sst2/validation.jsonl" | "nyu-mll/glue:sst2:validation",
                        "data_dir": str | null (set: scored on that folder's file, e.g. a dev split carved from train),
                        "task_type": "classification", "main_metric": "accuracy",
                        "metrics": {"accuracy": {"mean": float, "std": float, "values": [float per seed]}},
                        "seeds": [int], "hyperparameters": {...}, "train_seconds": float (all seeds),
                        "runs": [{"seed", "score" (main metric), "train_seconds", "steps", "best_step",
                                  "history": [main metric at each evaluation, first split only]}],
                        "init_from": null | "mnli", "trained_as": "sst2"}},
     "skipped": {"qqp": "why"}, "glue_average": float | null, "glue_average_tasks": [str],
     "spread": {"mode": "data_parallel" | "runs", "processes": int,
                "runs": [{"task": "sst2", "seed": 42, "process": int, "seconds": float}] (mode "runs" only)}}

`spread` (added by the harness, absent from older files) says how the runs used the launcher's
processes: each run on all of them (data_parallel), or each run on one process (runs: which, and its
wall-clock including start-up).

Metric values keep their module's scale: fractions for GLUE, SuperGLUE, NER and classification, percent for
SQuAD (as its official script). `std` is the sample standard deviation over seeds (0.0 for one seed).
`glue_average` is a fraction: the mean over the GLUE tasks present, WNLI excluded (as in the BERT and
MosaicBERT papers), of each task's score, a task with several metrics counting their mean (MRPC and QQP:
F1 and accuracy; STS-B: Pearson and Spearman; MNLI: matched and mismatched accuracy).
"""

import statistics
from datetime import datetime, timezone

from ..tasks.registry import SUITES, get_task, scored_split

# GLUE tasks left out of the GLUE average, as in the BERT and MosaicBERT papers
NOT_IN_GLUE_AVERAGE = ("wnli",)
SHORT = {"accuracy": "acc", "f1": "F1", "matthews_correlation": "MCC", "pearson": "P", "spearmanr": "S",
         "exact_match": "EM", "f1_a": "F1a", "macro_f1": "macro-F1", "micro_f1": "micro-F1", "f1_m": "F1m"}


def summary(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def aggregate(model: str, runs: dict[str, list[dict]], seeds: list[int], skipped: dict[str, str],
              wall_seconds: float, init_from: dict[str, str] | None = None) -> dict:
    """`runs[task]` holds finetune()'s results, one per seed; one entry per scored split (MNLI gives two)."""
    tasks = {}
    for task_name, results in runs.items():
        task = get_task(task_name)
        for split in task.splits:
            metric_names = list(results[0]["eval"][split.name]["metrics"])
            hyperparameters = dict(results[0]["hyperparameters"])
            tasks[split.name] = {
                "dataset": task.hub_id,
                "config": task.hub_config,
                "split": results[0]["eval"][split.name]["split"],
                "source": results[0]["eval"][split.name]["source"],
                "data_dir": results[0]["data_dir"],
                "task_type": task.kind,
                "main_metric": task.main_metric,
                "metrics": {m: summary([r["eval"][split.name]["metrics"][m] for r in results]) for m in metric_names},
                "seeds": [r["seed"] for r in results],
                "hyperparameters": hyperparameters,
                "train_examples": results[0]["train_examples"],
                "eval_examples": results[0]["eval"][split.name]["examples"],
                "train_seconds": round(sum(r["train_seconds"] for r in results), 2),
                "runs": [{"seed": r["seed"], "score": r["eval"][split.name]["metrics"][task.main_metric],
                          "train_seconds": r["train_seconds"], "steps": r["steps"], "best_step": r["best_step"],
                          # the loop records its evaluations of the task's first split (MNLI: matched)
                          "history": [h.get(task.main_metric) for h in r.get("history", [])]
                          if split.name == task_name else []}
                         for r in results],
                "init_from": (init_from or {}).get(task_name),
                "trained_as": task_name,
            }
    revision = next((r["revision"] for results in runs.values() for r in results if r.get("revision")), None)
    average, included = glue_average(tasks)
    return {"model": model, "revision": revision, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": round(wall_seconds, 2), "seeds": seeds, "tasks": tasks, "skipped": skipped,
            "glue_average": average, "glue_average_tasks": included}


def main_scores(results: dict) -> dict[str, dict]:
    """Each scored task's main metric from a results.json: {task: {"metric", "mean", "std", "values"}}, what the
    comparisons (a variant against its baseline, a budget against another) put side by side."""
    scores = {}
    for task, entry in results["tasks"].items():
        value = entry["metrics"][entry["main_metric"]]
        scores[task] = {"metric": entry["main_metric"], "mean": value["mean"], "std": value.get("std") or 0.0,
                        "values": value.get("values")}
    return scores


def task_score(entry: dict, name: str) -> float:
    """One number per task: the mean of its table metrics (fractions; SQuAD's percent divided by 100)."""
    task = get_task(name)
    metrics = task.metrics_shown
    value = statistics.fmean(entry["metrics"][m]["mean"] for m in metrics)
    return value / 100 if task.percent else value


def glue_average(tasks: dict) -> tuple[float | None, list[str]]:
    """The mean over the GLUE tasks present (registry order) of each task's score; a task scored on several splits
    (MNLI: matched and mismatched) counts once, as the mean of its splits."""
    per_task: dict[str, list[float]] = {}
    included = []
    for name in (n for n in tasks if get_task(n).name in SUITES["glue"]):
        task_name = get_task(name).name
        if task_name not in NOT_IN_GLUE_AVERAGE:
            per_task.setdefault(task_name, []).append(task_score(tasks[name], name))
            included.append(name)
    scores = [statistics.fmean(parts) for parts in per_task.values()]
    return (statistics.fmean(scores) if scores else None), included


def _cell(entry: dict, name: str) -> str:
    task = get_task(name)
    scale = 1 if task.percent else 100
    metrics = task.metrics_shown
    means = "/".join(f"{entry['metrics'][m]['mean'] * scale:.1f}" for m in metrics)
    if len(entry["seeds"]) < 2:
        return means
    stds = "/".join(f"{entry['metrics'][m]['std'] * scale:.1f}" for m in metrics)
    return f"{means} ± {stds}"


def _header(name: str) -> str:
    task = get_task(name)
    metrics = task.metrics_shown
    return f"{scored_split(name).display} ({'/'.join(SHORT.get(m, m) for m in metrics)})"


def markdown_table(results: dict) -> str:
    """The papers' layout: one row for the model, a column per task (x100, mean ± std over seeds), the GLUE
    average; then every metric of every task."""
    tasks = results["tasks"]
    order = list(tasks)  # as run: a suite in registry order
    columns = [_header(n) for n in order]
    cells = [_cell(tasks[n], n) for n in order]
    if results["glue_average"] is not None:
        columns.append("GLUE avg")
        cells.append(f"{results['glue_average'] * 100:.1f}")
    model = results["model"].rstrip("/").split("/")[-1] if "/" in results["model"] else results["model"]
    seeds = len(results["seeds"])
    lines = [f"| Model | {' | '.join(columns)} |", "|---|" + "---:|" * len(columns), f"| {model} | {' | '.join(cells)} |",
             "", f"Validation scores x100 ({'mean ± std over ' + str(seeds) + ' seeds' if seeds > 1 else '1 seed'}); "
             f"GLUE avg over {', '.join(results['glue_average_tasks']) or 'no GLUE task'} (WNLI excluded)."]
    lines += ["", "| task | metric | mean | std | seeds | train examples | train s |", "|---|---|---:|---:|---:|---:|---:|"]
    for name in order:
        entry = tasks[name]
        for metric, value in entry["metrics"].items():
            lines.append(f"| {name} | {metric} | {value['mean']:.4f} | {value['std']:.4f} | {len(entry['seeds'])} | "
                         f"{entry['train_examples']} | {entry['train_seconds']:.0f} |")
    if results["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"{n} ({why})" for n, why in results["skipped"].items())]
    return "\n".join(lines) + "\n"

