"""The three-way report of a from-bert build with `bert_baseline`: the real BERT adapted to the domain as BriskBERT
(a), the same BERT adapted as transformers' BertForMaskedLM on the same rows, masks, optimizer and budget (b), and
the BERT without adaptation (c, its exact BriskBERT conversion).

Writes <dir>/report.json (every number, the commands and budgets, and each target met or missed) and
<dir>/report.png: held-out MLM loss over training minutes for (a) and (b), beside each model's downstream scores
(mean and standard deviation over seeds). The plot needs matplotlib (`pip install briskbert[plots]`); without it the
JSON is still written.
"""

import json
import sys
from pathlib import Path

from ..evaluation.results import main_scores, summary
from ..pretraining.compare import load_run, seconds_to_reach

MODELS = {"a": ("BriskBERT, adapted", "results.json"),
          "b": ("BertForMaskedLM, adapted", "bert_results.json"),
          "c": ("no adaptation", "baseline_results.json")}


PLATEAU_SPREAD = 0.015  # the seed spread under which a few points of adaptation gain can show at 2x the spread


def plateau(runs: list[dict] | None) -> dict | None:
    """Whether a model's fine-tuning converged under the protocol: the mean over seeds of the main metric at each
    evaluation, and whether the last one moved it by less than the seeds' spread there. None without histories."""
    histories = [run["history"] for run in runs or [] if run.get("history")]
    if len(histories) < 2 or len({len(history) for history in histories}) != 1 or len(histories[0]) < 2:
        return None
    by_evaluation = [summary(list(values)) for values in zip(*histories)]  # the results' own mean and sample std
    means, spread = [scores["mean"] for scores in by_evaluation], by_evaluation[-1]["std"]
    change = means[-1] - means[-2]
    return {"mean_by_evaluation": means, "last_change": change, "last_spread": spread,
            "at_plateau": abs(change) < spread}


def write_report(out: Path, bert: str, evaluation: list[str], reproduce: str,
                  phases: list[tuple[str, Path, Path]] | None = None, recipe: dict | None = None,
                  drift: dict | None = None, fill_mask: dict | None = None) -> dict:
    """`phases`: the pretraining stages in order, (text, (a)'s run folder, (b)'s); by default one, on the corpus.
    The loss-time comparison is the first stage's; every stage's curves are in `phases` and the plot. `drift`: per
    adapted model, the linear CKA of its features with (c)'s at each layer (evaluation/drift.py). `fill_mask`: per
    adapted model and pretraining stage, its top guesses for the recipe's [MASK] sentences."""
    phases = phases or [("corpus", out / "pretrain", out / "bert-pretrain")]
    stage_runs = [{"text": text, "a": load_run(a), "b": load_run(b)} for text, a, b in phases]
    runs = {"a": stage_runs[0]["a"], "b": stage_runs[0]["b"]}
    records = {key: json.loads((out / results).read_text()) for key, (_, results) in MODELS.items()}
    scores = {key: main_scores(record) for key, record in records.items()}
    tasks = {}
    for task, score in scores["a"].items():
        row = {"metric": score["metric"]}
        for key in MODELS:
            value = scores[key][task]
            row[key] = {"mean": value["mean"], "std": value["std"], "values": value.get("values"),
                        "train_seconds": records[key]["tasks"][task].get("train_seconds"),
                        "runs": records[key]["tasks"][task].get("runs")}  # per seed: score, seconds, epochs
        # a gain a reader can trust: more than twice the larger of the two seed spreads (standard deviations)
        row["a_beats_c"] = row["a"]["mean"] - row["c"]["mean"] > 2 * max(row["a"]["std"], row["c"]["std"])
        row["a_at_least_b"] = row["a"]["mean"] >= row["b"]["mean"]
        row["c_plateau"] = plateau(row["c"]["runs"])
        tasks[task] = row
    wins_needed = min(2, len(tasks))  # of 3 bio tasks, 2; a recipe with one task needs it
    reached = seconds_to_reach(runs["a"]["evals"], runs["b"]["final_eval_loss"])
    fraction = time_fraction(runs["a"], runs["b"])
    report = {
        "reproduce": reproduce,
        "bert": bert,
        "recipe": recipe,
        "pretraining": {key: {**run, "config": json.loads((Path(run["folder"]) / "config.json").read_text())}
                        for key, run in runs.items()},
        "phases": [{**stage, "throughput_ratio": stage["a"]["tokens_per_s"] / stage["b"]["tokens_per_s"],
                    "a_fraction_of_b_time": time_fraction(stage["a"], stage["b"])} for stage in stage_runs],
        "feature_drift": drift,
        "fill_mask": fill_mask,
        "evaluation_flags": evaluation,
        "models": {key: name for key, (name, _) in MODELS.items()},
        "tasks": tasks,
        "targets": {
            f"a beats c by more than twice the larger seed spread on >= {wins_needed} of {len(tasks)} tasks":
                sum(r["a_beats_c"] for r in tasks.values()) >= wins_needed,
            "a reaches b's final eval loss in <= 0.6x b's time": fraction is not None and fraction <= 0.6,
            "a at least as good as b downstream on every task": all(r["a_at_least_b"] for r in tasks.values()),
            f"c at its plateau (last epoch moves its mean by less than the seed spread), spread <= "
            f"{PLATEAU_SPREAD}, on every task": all((r["c_plateau"] or {}).get("at_plateau") is True
                                                     and r["c"]["std"] <= PLATEAU_SPREAD for r in tasks.values()),
        },
        "a_seconds_to_reach_b_final_eval_loss": reached,
        "a_fraction_of_b_time": fraction,
        "throughput_ratio": runs["a"]["tokens_per_s"] / runs["b"]["tokens_per_s"],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print_report(report)
    try:
        plot_report(report, out / "report.png")
    except ImportError:
        print("matplotlib is not installed (pip install 'briskbert[plots]'): report.png not drawn", file=sys.stderr)
    return report


def time_fraction(a: dict, b: dict) -> float | None:
    """The fraction of (b)'s training time (a) took to reach (b)'s final eval loss; None if it never did."""
    reached = seconds_to_reach(a["evals"], b["final_eval_loss"])
    return None if reached is None else reached / b["train_seconds"]


def print_report(report: dict) -> None:
    names = report["models"]
    print("| task | metric | " + " | ".join(f"({key}) {name}" for key, name in names.items()) + " |")
    print("|---|---|" + "---:|" * len(names))
    for task, row in report["tasks"].items():
        cells = [f"{row[key]['mean']:.4f} ± {row[key]['std']:.4f}" for key in names]
        print(f"| {task} | {row['metric']} | " + " | ".join(cells) + " |")
    for task, row in report["tasks"].items():
        if row.get("c_plateau"):
            measured = row["c_plateau"]
            print(f"(c) on {task}, mean over seeds at each evaluation: "
                  + " ".join(f"{mean:.4f}" for mean in measured["mean_by_evaluation"])
                  + f"; the last moved it {measured['last_change']:+.4f}, the seed spread there is "
                    f"{measured['last_spread']:.4f}: {'' if measured['at_plateau'] else 'not '}at its plateau")
    a, b = report["pretraining"]["a"], report["pretraining"]["b"]
    fraction = report["a_fraction_of_b_time"]
    print(f"(a) {a['tokens_per_s']:.0f} tokens/s, final eval loss {a['final_eval_loss']:.3f} in "
          f"{a['train_seconds'] / 60:.1f} min; (b) {b['tokens_per_s']:.0f} tokens/s, {b['final_eval_loss']:.3f} in "
          f"{b['train_seconds'] / 60:.1f} min; (a) reached (b)'s final loss "
          + ("never" if fraction is None else f"in {fraction:.0%} of (b)'s time"))
    for key, layers in (report.get("feature_drift") or {}).items():
        print(f"({key}) against (c), linear CKA of the tasks' word features by layer: "
              + " ".join(f"{row['cka']:.3f}" for row in layers))
    for key, stages in (report.get("fill_mask") or {}).items():
        for stage, guesses in stages.items():
            for text, tokens in guesses.items():
                print(f"({key}) after {stage}: {text!r} -> {tokens}")
    for target, met in report["targets"].items():
        print(f"  {'met   ' if met else 'missed'} {target}")


def plot_report(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (curves, scores) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, 1.2]})
    phases = report.get("phases") or [{"text": "corpus", **report["pretraining"]}]
    for key, colour in (("a", "C0"), ("b", "C1")):
        offset = 0.0
        for index, phase in enumerate(phases):
            run = phase[key]
            label = f"({key}) {report['models'][key]}" + (f", {phase['text']}" if len(phases) > 1 else "")
            curves.plot([(offset + s) / 60 for s, _ in run["evals"]], [loss for _, loss in run["evals"]],
                        marker="o" if index == 0 else "s", markersize=3, color=colour, label=label,
                        linestyle="-" if index == 0 else "--")
            offset += run["train_seconds"]
    curves.set_xlabel("training wall-clock (minutes, evaluation excluded)")
    curves.set_ylabel("held-out MLM loss (15% masking, each text's own rows)")
    curves.grid(alpha=0.3)
    curves.legend()
    tasks = list(report["tasks"])
    width = 0.8 / len(report["models"])
    # every seed's score as a dot beside its model's mean ± std, on an axis fitted to the scores: differences of a
    # point or two are what the comparison is about, and bars from zero would hide them
    for index, key in enumerate(report["models"]):
        colour = f"C{index}"
        for i, task in enumerate(tasks):
            x, row = i + (index - 1) * width, report["tasks"][task][key]
            values = row.get("values") or [row["mean"]]
            scores.scatter([x + 0.12 * width] * len(values), values, s=12, color=colour, alpha=0.6)
            scores.errorbar([x - 0.12 * width], [row["mean"]], yerr=[row["std"]], fmt="o", color=colour, capsize=4,
                            label=f"({key}) {report['models'][key]}" if i == 0 else None)
    scores.set_xticks(range(len(tasks)), [f"{t}\n({report['tasks'][t]['metric']})" for t in tasks])
    scores.set_ylabel("score (mean ± std over seeds; dots: each seed)")
    scores.grid(axis="y", alpha=0.3)
    scores.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"wrote {path}")
