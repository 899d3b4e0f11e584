"""The evaluation harness: fine-tune a checkpoint per task and seed, then report; what briskbert-evaluate runs.

    config, passthrough = evaluate_config(["--model", "runs/tiny/final", "--tasks", "glue", "--data-dir", "data"])
    results = evaluate_model(config, passthrough)

--tasks takes task names and suites (glue, superglue, ner, qa, classification), comma-separated. Every run goes
through the same fine-tuning code as briskbert-finetune (each task's registry defaults; flags after `--` go to every
run). With --data-dir, a suite's tasks whose files are missing there are skipped and listed. --mnli-init follows the
MosaicBERT protocol: RTE, MRPC and STS-B start from the MNLI fine-tuned checkpoint of the same seed.

--spread data_parallel (the default): every fine-tune runs on all N processes (DDP); tasks and seeds run one after
the other. --spread runs: the (task, seed) runs are dealt round-robin to the N processes (torchrun works too), and
each process runs its share one after the other as plain `python -m briskbert.scripts.finetune ...` children on its
own device (the GPU of its LOCAL_RANK, else the CPU), logging to <run folder>/finetune.log; with --mnli-init, RTE,
MRPC and STS-B of a seed start once that seed's MNLI run is done. Process 0 waits for every run (marker files, no
process group held; --wait-hours bounds a wait in which no run finishes), then writes the results; a failed run
fails the command with the run's name and log. Mechanics: spread.py.

Writes the JSON (schema in results.py), the markdown table next to it (.md) and each run's folder under
<output stem>_runs/<task>/seed<k>/.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from accelerate import PartialState

from ..config import given_fields, parse_config, raise_problems
from ..finetuning.loop import FinetuneConfig, finetune, finetune_defaults, finished_run
from ..tasks.registry import SUITES, expand_tasks, get_task, has_local_data
from . import spread
from .results import aggregate, markdown_table

MNLI_INIT_TASKS = ("rte", "mrpc", "stsb")  # MosaicBERT (Portes et al. 2023), following RoBERTa's practice
SPREADS = ("data_parallel", "runs")
FINETUNE_MODULE = "briskbert.scripts.finetune"  # each --spread runs child: a plain single-process fine-tune


@dataclass
class EvaluateConfig:
    model: str = ""
    tasks: str = "glue"  # task names and/or suites, comma-separated
    output: str = "outputs/eval/results.json"
    data_dir: str | None = None  # a folder laid out like the repo's data/; None: the tasks' Hub datasets
    seeds: int = 1  # runs per task, with seeds seed, seed+1, ...
    seed: int = 42
    max_train_samples: int = 0
    max_eval_samples: int = 0
    max_steps: int = -1
    peft: str | None = None
    mnli_init: bool = False
    work_dir: str | None = None  # run folders; default <output stem>_runs next to the output
    spread: str = "data_parallel"  # data_parallel: each run on all processes | runs: runs dealt out to the processes
    wait_hours: float = 24.0  # --spread runs: give up when no run has finished for this long while waiting
    # a (task, seed) whose run folder holds the results of the same settings on the same model weights is read
    # instead of run again, so an interrupted evaluation goes on where it stopped
    reuse_finished: bool = True

    def __post_init__(self):
        problems = [] if self.model else ["--model is required (a folder or hub id)"]
        if self.seeds < 1:
            problems.append(f"--seeds must be at least 1, got {self.seeds}")
        if self.spread not in SPREADS:
            problems.append(f"--spread must be one of {SPREADS}, got {self.spread!r}")
        raise_problems("evaluation", problems)


def plan(config: EvaluateConfig) -> tuple[list[str], dict[str, str]]:
    """Tasks to run, in order, and the suite members skipped for want of local data."""
    names, skipped = expand_tasks(config.tasks), {}
    named = {get_task(part.strip()).name for part in config.tasks.split(",") if part.strip() and part.strip() not in SUITES}
    if config.data_dir is not None:
        for name in list(names):
            if name not in named and not has_local_data(get_task(name), config.data_dir):
                names.remove(name)
                skipped[name] = f"no {get_task(name).local_dir}/ train and validation files under --data-dir"
    if config.mnli_init and any(n in MNLI_INIT_TASKS for n in names):
        names = ["mnli", *(n for n in names if n != "mnli")]  # first: the others start from its checkpoints
        skipped.pop("mnli", None)
    return names, skipped


def run_config(config: EvaluateConfig, work: Path, name: str, seed: int,
               passthrough: list[str] = ()) -> tuple[FinetuneConfig, str | None]:
    """One (task, seed) run's FinetuneConfig, and the task its model comes from (or None): the task's protocol, then
    the harness's settings, then the flags after `--`, exactly as briskbert-finetune would read those flags."""
    model, init_from = config.model, None
    if config.mnli_init and name in MNLI_INIT_TASKS:
        model, init_from = str(work / "mnli" / f"seed{seed}" / "final"), "mnli"
    settings = {"model": model, "output_dir": str(work / name / f"seed{seed}"), "seed": seed,
                "max_train_samples": config.max_train_samples, "max_eval_samples": config.max_eval_samples}
    if config.data_dir is not None:
        settings["data_dir"] = config.data_dir
    if config.max_steps >= 0:
        settings["max_steps"] = config.max_steps
    if config.peft:
        settings["peft"] = config.peft
        if config.mnli_init and name == "mnli":
            settings["merge"] = True  # the next tasks start from a plain model
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, flags = pre.parse_known_args(list(passthrough))
    defaults, _ = finetune_defaults(name, known.config)
    return FinetuneConfig.for_task(name, defaults, **{**settings, **given_fields(FinetuneConfig, flags)}), init_from


def reusable(config: EvaluateConfig, run: FinetuneConfig, label: str, waits_on_a_rerun: bool = False):
    """The results of this (task, seed) run when it finished earlier with the same settings and model weights (and
    the run it starts from is not being run again), else None."""
    if not config.reuse_finished or waits_on_a_rerun:
        return None
    results = finished_run(run)
    if results is not None:
        print(f"=== {label}: finished earlier with the same model weights and settings, reused "
              f"({run.output_dir}/results.json; --reuse-finished false runs it again)", flush=True)
    return results


def evaluate_config(argv: list[str] | None = None) -> tuple[EvaluateConfig, list[str]]:
    """(the harness's config, the flags after `--` that go to every fine-tuning run)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, passthrough = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    return parse_config(EvaluateConfig, own), passthrough


def evaluate_model(config: EvaluateConfig, passthrough: list[str] = ()) -> dict:
    """Fine-tune and score every (task, seed); process 0 writes the results JSON and its markdown table."""
    passthrough = list(passthrough)
    output = Path(config.output)
    work = Path(config.work_dir) if config.work_dir else output.parent / f"{output.stem}_runs"
    names, skipped = plan(config)
    seeds = [config.seed + i for i in range(config.seeds)]
    runs, init_from, start = {}, {}, time.perf_counter()
    if config.spread == "runs":
        planned, reused = [], {}
        for name in names:
            for seed in seeds:
                run, source = run_config(config, work, name, seed, passthrough)
                if source:
                    init_from[name] = source
                earlier = reusable(config, run, f"{name}, seed {seed}",
                                   waits_on_a_rerun=bool(source) and f"{source}/seed{seed}" not in reused)
                if earlier is not None:
                    reused[f"{name}/seed{seed}"] = earlier
                    continue
                # the child reads this same config back from a recipe of every field, kept beside its run folder
                # (written whole, then renamed: every process writes it, and another one's child may be reading it)
                recipe = work / name / f"seed{seed}.finetune.yaml"
                recipe.parent.mkdir(parents=True, exist_ok=True)
                partial_file = recipe.with_suffix(f".{os.getpid()}.part")
                partial_file.write_text(yaml.safe_dump(dataclasses.asdict(run), sort_keys=False))
                os.replace(partial_file, recipe)
                planned.append(spread.Run(f"{name}/seed{seed}", f"{name} seed {seed}",
                                          [sys.executable, "-m", FINETUNE_MODULE, "--config", str(recipe)],
                                          work / name / f"seed{seed}",
                                          after=(f"{source}/seed{seed}",) if source else ()))
        planned = [dataclasses.replace(run, after=tuple(key for key in run.after if key not in reused))
                   for run in planned]
        done = spread.spread_runs(planned, work / ".spread", config.wait_hours)
        if done is None:  # not process 0: its share is done, process 0 writes the results
            return {}
        for name in names:
            for seed in seeds:
                key = f"{name}/seed{seed}"
                runs.setdefault(name, []).append(reused[key] if key in reused else done[key]["results"])
        is_main = True
        placement = {"mode": "runs", "processes": spread.process_rank()[1],
                     "runs": [{"task": run.key.split("/")[0], "seed": done[run.key]["results"]["seed"],
                               "process": done[run.key]["process"], "seconds": done[run.key]["seconds"]}
                              for run in planned],
                     "reused": sorted(reused)}
    else:
        state = PartialState()
        for name in names:
            for seed in seeds:
                run, source = run_config(config, work, name, seed, passthrough)
                if source:
                    init_from[name] = source
                earlier = reusable(config, run, f"{name}, seed {seed}")
                if earlier is None:
                    state.print(f"=== {name}, seed {seed}")
                runs.setdefault(name, []).append(earlier or finetune(run))
        is_main = state.is_main_process
        placement = {"mode": "data_parallel", "processes": state.num_processes}
    results = aggregate(config.model, runs, seeds, skipped, time.perf_counter() - start, init_from)
    results["spread"] = placement
    table = markdown_table(results)
    if is_main:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2))
        output.with_suffix(".md").write_text(table)
        print(table)
        print(f"results: {output} and {output.with_suffix('.md')}")
    return results
