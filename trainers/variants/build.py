"""Build a domain variant of BriskBERT with one command, stage by stage: corpus -> (convert) -> tokenizer ->
pretraining -> downstream scores -> model card -> (with a baseline) comparison -> (with a BERT baseline) report.
What briskbert-build-variant runs.

Each stage stops at its artifact and is skipped on a rerun once finished (stages.py); the pretraining and scoring
stages run briskbert-pretrain and briskbert-evaluate as child processes, so an interrupted pretraining resumes from
its checkpoints. Strategies:
- `scratch` trains a new tokenizer on the domain corpus and pretrains from random weights;
- `continue` extends the base model's tokenizer with the domain's most used unseen pieces and continues pretraining
  the base model;
- `from-bert` converts a real pretrained transformers BERT exactly to BriskBERT (stage convert) and continues
  pretraining that, with the recipe's own budget. With `bert_baseline` the same BERT also continues pretraining as
  transformers' BertForMaskedLM on the same rows, side by side; both are scored, the converted BERT without
  adaptation is the comparison's baseline, and the report stage writes <dir>/report.json and report.png.

Writes <dir>/tokenizer/, <dir>/pretrain/, <dir>/results.json and <dir>/card/README.md; with a baseline model (the
general BriskBERT of the same size and budget) the stage compare scores it on the same tasks with the same settings
(<dir>/baseline_results.json) and writes <dir>/comparison.json: both main metrics per task and both tokenizers' word
pieces per word on the domain corpus. It may be added later: a rerun with a baseline runs only it.
"""

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from transformers import AutoTokenizer

from ..data.corpus import as_source, read_texts, resolve_files
from ..data.tokenizer import ARABIC_NORMALIZERS, extend_tokenizer, pieces_per_word, train_wordpiece
from ..evaluation.drift import feature_drift
from ..evaluation.results import main_scores
from ..hub.model_card import find_records, render_card
from ..inference.fill_mask import fill_mask_folder
from ..resources import SHIPPED_BERT, base_bert, data_path, recipe_path
from ..tasks.registry import get_task, load_task_data, training_texts
from .recipe import VariantRecipe
from .report import write_report
from .stages import Stages

STRATEGIES = ("scratch", "continue", "from-bert")

# the pretraining recipe and budget of each preset (briskbert-pretrain flags)
PRESET_PRETRAINING = {
    "tiny": ("tiny-cpu", ["--max-steps", "40", "--eval-every", "20", "--save-every", "20"]),
    "mini": ("mini", ["--max-steps", "400", "--max-minutes", "30", "--eval-every", "50", "--save-every", "100"]),
    "base": ("base", []),
}
# tiny proves the path end to end (CI runs it per variant), so its fine-tunes are a few steps, not a score
PRESET_EVALUATION = {"tiny": ["--seeds", "1", "--max-train-samples", "64", "--max-eval-samples", "100"],
                     "mini": ["--seeds", "1"], "base": ["--seeds", "3"]}


@dataclass
class VariantBuild:
    """One build: briskbert-build-variant's options (scripts/build_variant.py)."""

    variant: str  # a bundled variant recipe's name or a YAML path
    output_dir: Path
    preset: str = "tiny"
    strategy: str | None = None  # None: the recipe's, else scratch
    base_model: str | None = None  # continue: the general BriskBERT to start from; from-bert: a transformers BERT
    data_dir: Path = Path("data")  # laid out like the repo's data/
    from_stage: str | None = None
    tasks: str | None = None  # comma-separated, instead of the recipe's
    pretrain_args: list[str] = field(default_factory=list)
    compare_with: list[Path] = field(default_factory=list)
    baseline_model: str | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None


def run(command: list[str]) -> None:
    print("$", " ".join(command), flush=True)
    if subprocess.run(command, stdin=subprocess.DEVNULL).returncode != 0:
        raise SystemExit(f"stage command failed: {' '.join(command)}; rerun briskbert-build-variant to resume here.")


def run_side_by_side(commands: dict[Path, list[str]]) -> None:
    """Commands that run at the same time, the CPU threads split between them, so that runs given equal time budgets
    see the same machine; each one's output goes to <folder>.log. Alone, one takes all the threads and the console."""
    if len(commands) == 1:
        run(next(iter(commands.values())))
        return
    threads = str(max(1, (os.cpu_count() or 1) // len(commands)))
    processes = []
    for folder, command in commands.items():
        print("$", f"OMP_NUM_THREADS={threads}", " ".join(command), f"> {folder}.log", flush=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        log = open(folder.parent / f"{folder.name}.log", "a")
        processes.append((command, log, subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                                         stderr=subprocess.STDOUT,
                                                         env={**os.environ, "OMP_NUM_THREADS": threads})))
    failed = []
    for command, log, process in processes:
        if process.wait() != 0:
            failed.append(f"{' '.join(command)} (its output: {log.name})")
        log.close()
    if failed:
        raise SystemExit("stage command failed: " + "; ".join(failed) + "; rerun briskbert-build-variant to resume.")


def pretrain_side_by_side(commands: dict[Path, list[str]]) -> None:
    """Pretraining runs side by side (run_side_by_side); a run that already wrote its summary is finished and not
    started again, an interrupted one resumes from its last checkpoint."""
    pending = {}
    for folder, command in commands.items():
        if (folder / "summary.json").is_file():
            print(f"{folder} finished earlier (summary.json), not run again", flush=True)
        elif (folder / "checkpoints").is_dir() and any((folder / "checkpoints").glob("step_*")):
            pending[folder] = [*command, "--resume"]  # an interrupted pretraining goes on from its last checkpoint
        else:
            pending[folder] = command
    if pending:
        run_side_by_side(pending)


@dataclass(frozen=True)
class PretrainPhase:
    """One continued-pretraining stage of a from-bert build: (a) BriskBERT and, with a BERT baseline, (b)
    BertForMaskedLM, on the same text with the same budget."""

    source: str  # "corpus" or "tasks" (recipe.pretrain_on)
    folder: Path  # (a)'s run
    bert_folder: Path  # (b)'s run
    budget: dict  # PretrainConfig fields


def pretrain_phases(recipe: VariantRecipe, out: Path) -> list[PretrainPhase]:
    """The build's pretraining runs in order; a scratch or continue build has one, on the corpus."""
    names = {"corpus": ("pretrain", "bert-pretrain", recipe.pretrain),
             "tasks": ("task-pretrain", "bert-task-pretrain", recipe.task_pretrain)}
    return [PretrainPhase(source, out / names[source][0], out / names[source][1], names[source][2])
            for source in recipe.pretrain_on]


def corpus_sources(recipe: VariantRecipe, data_dir: Path) -> list[str]:
    local = [data_dir / item for item in recipe.corpus]
    if all(path.exists() for path in local):
        return [str(path) for path in local]
    if recipe.corpus_hub_id:
        return [recipe.corpus_hub_id]
    raise SystemExit(f"Corpus {recipe.corpus} not found under {data_dir} and the recipe names no corpus_hub_id: "
                     f"pass --data-dir pointing at a folder laid out like the repo's data/ (<data_dir>/corpus/...).")


def build_variant(args: VariantBuild) -> None:
    """Every stage of one variant build, each skipped when finished earlier."""
    recipe = VariantRecipe.load(recipe_path(args.variant, folder="variants"))
    strategy = args.strategy or recipe.strategy or "scratch"
    if strategy not in STRATEGIES:
        raise SystemExit(f"Variant recipe {args.variant}: strategy must be one of {STRATEGIES}, got {strategy!r}.")
    if strategy == "continue" and not args.base_model:
        raise SystemExit("--strategy continue needs --base-model (e.g. the `general` variant's pretrain/final folder, "
                         "or a BriskBERT hub id)")
    if recipe.bert_baseline and strategy != "from-bert":
        raise SystemExit(f"Variant recipe {args.variant}: bert_baseline compares against the BERT a from-bert build "
                         f"starts from; set strategy: from-bert.")
    out = args.output_dir.resolve()
    stages = Stages(out)
    if args.from_stage:
        stages.reset_from(args.from_stage)
    sources = corpus_sources(recipe, args.data_dir)
    if args.baseline_model is not None:
        check_baseline(args.baseline_model)

    if not stages.done("corpus"):
        files = resolve_files(as_source(sources))
        record = {"sources": sources, "files": [str(f) for f in files or []], "license": recipe.license,
                  "license_note": recipe.license_note}
        (out).mkdir(parents=True, exist_ok=True)
        (out / "corpus.json").write_text(json.dumps(record, indent=2))
        stages.finish("corpus", record)

    base_model, bert = args.base_model, None
    if strategy == "from-bert":
        bert, base_model = base_bert(args.base_model or recipe.base_model), str(out / "converted")
        if not stages.done("convert", source=bert):
            stages.clear(Path(base_model))
            run([sys.executable, "-m", "briskbert.scripts.convert", "--from", "bert", "--source", bert, "--output",
                 base_model, "--check"])
            stages.finish("convert", {"source": bert})

    phases = pretrain_phases(recipe, out)
    task_text = out / "task-text" / "train.txt"  # task-adaptive pretraining's text

    tokenizer_dir = out / "tokenizer"
    if not stages.done("tokenizer"):
        stages.clear(tokenizer_dir)
        if "tasks" in recipe.pretrain_on:
            write_task_text(recipe, args, task_text)
        # the domain's pieces come from the first text the model continues on
        texts = corpus_texts([str(task_text)] if phases[0].source == "tasks" else sources, recipe)
        general_name = base_model or data_path("data/tokenizer")  # what the new tokenizer is measured against
        general = AutoTokenizer.from_pretrained(general_name, trust_remote_code=True)
        if strategy == "scratch":
            tokenizer = train_wordpiece(
                texts, recipe.vocab_size, cased=recipe.cased, strip_accents=recipe.strip_accents,
                unicode_normalization=recipe.unicode_normalization,
                extra_normalizers=ARABIC_NORMALIZERS if recipe.arabic_normalization else ())
            new_tokens = []
        elif recipe.extend_tokens:
            tokenizer, new_tokens = extend_tokenizer(general, texts, recipe.extend_tokens)
        else:  # the base model's own pieces
            tokenizer, new_tokens = general, []
        tokenizer.save_pretrained(tokenizer_dir)
        sample = pieces_sample(texts)
        report = {"strategy": strategy, "vocab_size": len(tokenizer), "new_tokens": len(new_tokens),
                  "first_new_tokens": new_tokens[:20], "pieces_per_word": pieces_per_word(tokenizer, sample),
                  "general_tokenizer": general_name,
                  "general_pieces_per_word": pieces_per_word(general, sample)}
        if "tasks" in recipe.pretrain_on:  # where the scores are taken: the tasks' own text
            task_sample = pieces_sample(corpus_texts([str(task_text)], recipe))
            report.update(task_text_pieces_per_word=pieces_per_word(tokenizer, task_sample),
                          general_task_text_pieces_per_word=pieces_per_word(general, task_sample))
        (tokenizer_dir / "tokenizer_report.json").write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2))
        stages.finish("tokenizer", report)

    if not stages.done("pretrain"):
        if "tasks" in recipe.pretrain_on and not task_text.is_file():
            write_task_text(recipe, args, task_text)
        start_a, start_b = base_model, bert
        for index, phase in enumerate(phases):
            if strategy == "from-bert":  # the recipe's own budget: the model's size is the BERT's
                budget_file = out / f"{phase.folder.name}.yaml"
                budget_file.write_text(yaml.safe_dump(phase.budget))
                recipe_file, budget = budget_file, []
            else:
                recipe_file, budget = recipe_path(PRESET_PRETRAINING[args.preset][0]), PRESET_PRETRAINING[args.preset][1]
                budget = [*budget, "--preset", args.preset]
            data = [str(task_text)] if phase.source == "tasks" else sources
            command = [sys.executable, "-m", "briskbert.scripts.pretrain", "--config", str(recipe_file),
                       "--train-data", *data, "--text-column", recipe.text_column,
                       "--whole-word-masking", str(recipe.whole_word_masking), *budget, *args.pretrain_args]
            if index == 0:  # later stages read the tokenizer their start saved (grown already)
                command += ["--tokenizer", str(tokenizer_dir)]
            runs = {phase.folder: [*command, "--output-dir", str(phase.folder)]
                    + (["--init-from", start_a] if strategy != "scratch" else [])}
            if recipe.bert_baseline:  # the same BERT, rows, masks, optimizer and budget; only the architecture differs
                runs[phase.bert_folder] = [*command, "--output-dir", str(phase.bert_folder), "--init-from", start_b,
                                           "--model-type", "bert"]
            pretrain_side_by_side(runs)
            start_a, start_b = str(phase.folder / "final"), str(phase.bert_folder / "final")
        stages.finish("pretrain", json.loads((phases[-1].folder / "summary.json").read_text()))
    adapted = phases[-1].folder / "final"

    results, bert_results = out / "results.json", out / "bert_results.json"
    bert_converted = out / "bert-adapted-converted"
    evaluation = evaluation_flags(args, recipe, strategy)
    evaluate = [sys.executable, "-m", "briskbert.scripts.evaluate_model"]
    if not stages.done("evaluate"):
        stages.clear(results)
        stages.clear(bert_results)
        scorings = {results: [*evaluate, "--model", str(adapted), "--output", str(results), *evaluation]}
        if recipe.bert_baseline:
            # (b) is scored through its exact BriskBERT conversion, as (c) is: the three models are then fine-tuned
            # by the same code, and only their weights differ
            stages.clear(bert_converted)
            run([sys.executable, "-m", "briskbert.scripts.convert", "--from", "bert", "--source",
                 str(phases[-1].bert_folder / "final"), "--output", str(bert_converted), "--check"])
            scorings[bert_results] = [*evaluate, "--model", str(bert_converted), "--output", str(bert_results),
                                      *evaluation]
        run_side_by_side(scorings)  # each model's finished (task, seed) runs are reused on a rerun
        stages.finish("evaluate", {"results": str(results)})

    card_dir = out / "card"
    if not stages.done("card"):
        stages.clear(card_dir)
        write_card(recipe, args, adapted, results, card_dir,
                   args.base_model or recipe.base_model or SHIPPED_BERT if strategy == "from-bert" else base_model)
        stages.finish("card", {"card": str(card_dir / "README.md")})

    baseline_results, comparison = out / "baseline_results.json", out / "comparison.json"
    baseline_model = args.baseline_model or (base_model if strategy == "from-bert" else None)  # no adaptation
    if baseline_model is None:
        print("== stage compare: no --baseline-model given, skipped (rerun with one to score the general model "
              "beside this variant)", flush=True)
    elif not stages.done("compare", baseline_model=str(baseline_model), evaluation=evaluation):
        stages.clear(baseline_results)
        stages.clear(comparison)
        # same tasks, seeds and caps as the variant's scores: the only difference is the model
        run([*evaluate, "--model", str(baseline_model), "--output", str(baseline_results), *evaluation])
        tokenizer = AutoTokenizer.from_pretrained(str(baseline_model), trust_remote_code=True)
        baseline_pieces = pieces_per_word(tokenizer, pieces_sample(corpus_texts(sources, recipe)))
        write_comparison(out, baseline_results, baseline_pieces)
        stages.finish("compare", {"baseline_model": str(baseline_model), "evaluation": evaluation})
    if comparison.is_file():
        print_comparison(json.loads(comparison.read_text()))

    if recipe.bert_baseline and not stages.done("report"):
        stages.clear(out / "report.json")
        reproduce = shlex.join(["briskbert-build-variant", "--variant", args.variant,
                                "--output-dir", str(args.output_dir), "--data-dir", str(args.data_dir)])
        # how far each adaptation moved the encoder's features from the unadapted BERT's, on the tasks' words
        words = drift_sentences(args.tasks or ",".join(recipe.tasks), args.data_dir)
        drift = {"a": feature_drift(str(adapted), base_model, words),
                 "b": feature_drift(str(bert_converted), base_model, words)}
        # what each adapted model has learned to put in a [MASK], after each pretraining stage
        guesses = None
        if recipe.fill_mask:
            guesses = {"a": {phase.source: fill_mask_folder(phase.folder / "final", recipe.fill_mask)
                             for phase in phases},
                       "b": {phase.source: fill_mask_folder(phase.bert_folder / "final", recipe.fill_mask)
                             for phase in phases}}
        write_report(out, bert=bert, evaluation=evaluation, reproduce=reproduce,
                     phases=[(phase.source, phase.folder, phase.bert_folder) for phase in phases],
                     recipe=dataclasses.asdict(recipe), drift=drift, fill_mask=guesses)
        stages.finish("report", {"report": str(out / "report.json")})
    compare([out, *args.compare_with])


def evaluation_flags(args: VariantBuild, recipe: VariantRecipe, strategy: str) -> list[str]:
    """briskbert-evaluate's flags, the same for every model a build scores: the command line's caps, else the
    recipe's, else the preset's; the recipe's fine-tuning fields go to every run (after `--`). A from-bert build's
    model is the BERT's size, not a preset's: no preset caps, so the tasks' own protocol runs unless the recipe or
    the command line caps it."""
    preset = PRESET_EVALUATION[args.preset] if strategy != "from-bert" else []
    values = dict(zip(preset[::2], preset[1::2]))
    for flag, value in (("--seeds", recipe.seeds),
                        ("--max-train-samples", args.max_train_samples or recipe.max_train_samples),
                        ("--max-eval-samples", args.max_eval_samples or recipe.max_eval_samples)):
        if value is not None:
            values[flag] = str(value)
    flags = ["--tasks", args.tasks or ",".join(recipe.tasks), "--data-dir", str(args.data_dir),
             *(item for pair in values.items() for item in pair)]
    finetune = [item for name, value in recipe.finetune.items() for item in (f"--{name.replace('_', '-')}", str(value))]
    return flags + (["--", *finetune] if finetune else [])


def write_task_text(recipe: VariantRecipe, args: VariantBuild, path: Path) -> None:
    """The recipe tasks' training rows as plain text, one per line, labels left out (never a scored row)."""
    tasks = (args.tasks or ",".join(recipe.tasks)).split(",")
    lines = [" ".join(text.split()) for task in tasks for text in training_texts(get_task(task.strip()), args.data_dir)]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".partial")
    temporary.write_text("".join(line + "\n" for line in lines if line))
    temporary.rename(path)
    # what the model card reads to name this text's sources and their licenses
    (path.parent / "tasks.json").write_text(json.dumps({"tasks": [task.strip() for task in tasks]}))
    print(f"task-adaptive text: {len(lines)} training rows of {', '.join(tasks)} -> {path}", flush=True)


def drift_sentences(tasks: str, data_dir: Path, rows: int = 256) -> list[list[str]]:
    """The words of the first `rows` scored rows of the first task: the text feature drift is measured on."""
    task = get_task(tasks.split(",")[0].strip())
    scored = load_task_data(task, data_dir, max_eval_samples=rows)[task.splits[0].name]
    return [task.plain_text(row).split() for row in scored]


def corpus_texts(sources: list[str], recipe: VariantRecipe) -> list[str]:
    return read_texts(sources if len(sources) > 1 else sources[0], recipe.text_column, 500_000)


def pieces_sample(texts: list[str]) -> list[str]:
    """The ~2,000 texts, spread over the corpus, that every tokenizer's pieces per word is measured on."""
    return texts[:: max(1, len(texts) // 2000)]


def check_baseline(baseline: str) -> None:
    """A baseline is a model folder or a hub id ("org/name"); say so before any work when it is neither (a
    variant may also be built first and its baseline added by a later rerun, which runs only the compare stage)."""
    if Path(baseline).is_dir() or (re.fullmatch(r"[\w.-]+(/[\w.-]+)?", baseline) and not Path(baseline).exists()):
        return
    raise SystemExit(f"--baseline-model {baseline} is neither a model folder nor a hub id: build the general model "
                     f"first (briskbert-build-variant --variant general ...) and pass its <dir>/pretrain/final, or leave the "
                     f"flag out now and add it in a rerun, which only runs the comparison.")


def write_comparison(out: Path, baseline_results: Path, baseline_pieces: float) -> None:
    """comparison.json: the variant against the general model on the variant's own tasks, and both tokenizers'
    pieces per word on the same sample of the domain corpus."""
    variant = main_scores(json.loads((out / "results.json").read_text()))
    baseline_record = json.loads(baseline_results.read_text())
    baseline = main_scores(baseline_record)
    tokenizer = json.loads((out / "tokenizer" / "tokenizer_report.json").read_text())
    rows = {}
    for task, score in variant.items():
        ours, theirs = score["mean"], baseline[task]["mean"]
        rows[task] = {"metric": score["metric"], "variant": ours, "baseline": theirs, "difference": ours - theirs}
    record = {"variant": out.name, "baseline_model": baseline_record["model"], "tasks": rows,
              "variant_wins": sum(row["difference"] > 0 for row in rows.values()), "num_tasks": len(rows),
              "pieces_per_word": {"variant": tokenizer["pieces_per_word"], "baseline": baseline_pieces}}
    (out / "comparison.json").write_text(json.dumps(record, indent=2))


def print_comparison(record: dict) -> None:
    print(f"| task | metric | {record['variant']} | baseline | difference |\n|---|---|---:|---:|---:|")
    for task, row in record["tasks"].items():
        print(f"| {task} | {row['metric']} | {row['variant']:.4f} | {row['baseline']:.4f} | {row['difference']:+.4f} |")
    pieces = record["pieces_per_word"]
    print(f"word pieces per word on the domain corpus: {pieces['variant']} (variant) vs {pieces['baseline']} (baseline)")


def write_card(recipe: VariantRecipe, args: VariantBuild, model_dir: Path, results: Path, card_dir: Path,
               base_model: str | None) -> None:
    """The same card briskbert-push-to-hub would publish, rendered from this run's records (license from the data)."""
    records = find_records(model_dir, results=results)
    card = render_card(records, repo_id=f"briskbert/briskbert-{recipe.variant}-{args.preset}",
                       base_model=base_model)
    card_dir.mkdir(parents=True, exist_ok=True)
    card.save(card_dir / "README.md")


def compare(folders: list[Path]) -> None:
    """Main metric per task for each run folder that has results.json, side by side."""
    runs = {f.name: json.loads((f / "results.json").read_text()) for f in folders if (f / "results.json").is_file()}
    tasks = sorted({task for result in runs.values() for task in result.get("tasks", {})})
    print("| task | " + " | ".join(runs) + " |\n|---|" + "---|" * len(runs))
    for task in tasks:
        cells = []
        for result in runs.values():
            entry = result.get("tasks", {}).get(task)
            if entry is None:
                cells.append("-")
                continue
            metric = entry["metrics"][entry["main_metric"]]
            cells.append(f"{entry['main_metric']} {metric['mean']:.4f} ± {metric.get('std') or 0:.4f}")
        print(f"| {task} | " + " | ".join(cells) + " |")
