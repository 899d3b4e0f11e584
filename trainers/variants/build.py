"""Build a domain variant of BriskBERT with one command, stage by stage: corpus -> tokenizer -> pretraining ->
downstream scores -> model card -> (with a baseline) comparison. What briskbert-build-variant runs.

Each stage stops at its artifact and is skipped on a rerun once finished (stages.py); the pretraining and scoring
stages run briskbert-pretrain and briskbert-evaluate as child processes, so an interrupted pretraining resumes from
its checkpoints. Strategies: `scratch` trains a new tokenizer on the domain corpus and pretrains from random weights;
`continue` extends the base model's tokenizer with the domain's most used unseen pieces and continues pretraining the
base model. Writes <dir>/tokenizer/, <dir>/pretrain/, <dir>/results.json and <dir>/card/README.md; with a baseline
model (the general BriskBERT of the same size and budget) the last stage, compare, scores it on the same tasks with
the same settings (<dir>/baseline_results.json) and writes <dir>/comparison.json: both main metrics per task and both
tokenizers' word pieces per word on the domain corpus. It may be added later: a rerun with a baseline runs only it.
"""

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from transformers import AutoTokenizer

from ..data.corpus import load_corpus, resolve_files
from ..data.tokenizer import ARABIC_NORMALIZERS, extend_tokenizer, pieces_per_word, train_wordpiece
from ..hub.model_card import find_records, render_card
from ..resources import data_path, recipe_path
from .recipe import VariantRecipe
from .stages import Stages

STRATEGIES = ("scratch", "continue")

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
    strategy: str = "scratch"
    base_model: str | None = None  # continue: the general BriskBERT to start from
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
    out = args.output_dir.resolve()
    stages = Stages(out)
    if args.from_stage:
        stages.reset_from(args.from_stage)
    sources = corpus_sources(recipe, args.data_dir)
    if args.baseline_model is not None:
        check_baseline(args.baseline_model)

    if not stages.done("corpus"):
        files = resolve_files(sources if len(sources) > 1 or Path(sources[0]).exists() else sources[0])
        record = {"sources": sources, "files": [str(f) for f in files or []], "license": recipe.license,
                  "license_note": recipe.license_note}
        (out).mkdir(parents=True, exist_ok=True)
        (out / "corpus.json").write_text(json.dumps(record, indent=2))
        stages.finish("corpus", record)

    tokenizer_dir = out / "tokenizer"
    if not stages.done("tokenizer"):
        stages.clear(tokenizer_dir)
        texts = corpus_texts(sources, recipe)
        general = AutoTokenizer.from_pretrained(reference_tokenizer(args), trust_remote_code=True)
        if args.strategy == "scratch":
            tokenizer = train_wordpiece(
                texts, recipe.vocab_size, cased=recipe.cased, strip_accents=recipe.strip_accents,
                unicode_normalization=recipe.unicode_normalization,
                extra_normalizers=ARABIC_NORMALIZERS if recipe.arabic_normalization else ())
            new_tokens = []
        else:
            tokenizer, new_tokens = extend_tokenizer(general, texts, recipe.extend_tokens)
        tokenizer.save_pretrained(tokenizer_dir)
        sample = pieces_sample(texts)
        report = {"strategy": args.strategy, "vocab_size": len(tokenizer), "new_tokens": len(new_tokens),
                  "pieces_per_word": pieces_per_word(tokenizer, sample),
                  "general_tokenizer": str(reference_tokenizer(args)),
                  "general_pieces_per_word": pieces_per_word(general, sample)}
        (tokenizer_dir / "tokenizer_report.json").write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2))
        stages.finish("tokenizer", report)

    pretrain_dir = out / "pretrain"
    if not stages.done("pretrain"):
        recipe_file, budget = PRESET_PRETRAINING[args.preset]
        command = [sys.executable, "-m", "briskbert.scripts.pretrain", "--config", str(recipe_path(recipe_file)),
                   "--output-dir", str(pretrain_dir), "--preset", args.preset, "--tokenizer", str(tokenizer_dir),
                   "--train-data", *sources, "--text-column", recipe.text_column,
                   "--whole-word-masking", str(recipe.whole_word_masking), *budget]
        if args.strategy == "continue":
            command += ["--init-from", str(args.base_model)]
        if (pretrain_dir / "checkpoints").is_dir() and any((pretrain_dir / "checkpoints").glob("step_*")):
            command.append("--resume")  # an interrupted pretraining goes on from its last checkpoint
        run(command + list(args.pretrain_args))
        stages.finish("pretrain", json.loads((pretrain_dir / "summary.json").read_text()))

    results = out / "results.json"
    evaluation = ["--tasks", args.tasks or ",".join(recipe.tasks), "--data-dir", str(args.data_dir),
                  *PRESET_EVALUATION[args.preset]]
    for flag, value in (("--max-train-samples", args.max_train_samples),
                        ("--max-eval-samples", args.max_eval_samples)):
        if value is not None:
            evaluation += [flag, str(value)]
    evaluate = [sys.executable, "-m", "briskbert.scripts.evaluate_model"]
    if not stages.done("evaluate"):
        stages.clear(results)
        run([*evaluate, "--model", str(pretrain_dir / "final"), "--output", str(results), *evaluation])
        stages.finish("evaluate", {"results": str(results)})

    card_dir = out / "card"
    if not stages.done("card"):
        stages.clear(card_dir)
        write_card(recipe, args, pretrain_dir / "final", results, card_dir)
        stages.finish("card", {"card": str(card_dir / "README.md")})

    baseline_results, comparison = out / "baseline_results.json", out / "comparison.json"
    if args.baseline_model is None:
        print("== stage compare: no --baseline-model given, skipped (rerun with one to score the general model "
              "beside this variant)", flush=True)
    elif not stages.done("compare", baseline_model=str(args.baseline_model), evaluation=evaluation):
        stages.clear(baseline_results)
        stages.clear(comparison)
        # same tasks, seeds and caps as the variant's scores: the only difference is the model
        run([*evaluate, "--model", str(args.baseline_model), "--output", str(baseline_results), *evaluation])
        tokenizer = AutoTokenizer.from_pretrained(str(args.baseline_model), trust_remote_code=True)
        baseline_pieces = pieces_per_word(tokenizer, pieces_sample(corpus_texts(sources, recipe)))
        write_comparison(out, baseline_results, baseline_pieces)
        stages.finish("compare", {"baseline_model": str(args.baseline_model), "evaluation": evaluation})
    if comparison.is_file():
        print_comparison(json.loads(comparison.read_text()))
    compare([out, *args.compare_with])


def corpus_texts(sources: list[str], recipe: VariantRecipe) -> list[str]:
    corpus = load_corpus(sources if len(sources) > 1 else sources[0], recipe.text_column)
    return [t for t in islice(corpus[recipe.text_column], 500_000) if t and t.strip()]


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


def reference_tokenizer(args: VariantBuild) -> str:
    """What the new tokenizer is first measured against: the base model's (continue), else BERT's uncased one."""
    return str(args.base_model or data_path("data/tokenizer"))


def write_comparison(out: Path, baseline_results: Path, baseline_pieces: float) -> None:
    """comparison.json: the variant against the general model on the variant's own tasks, and both tokenizers'
    pieces per word on the same sample of the domain corpus."""
    variant = json.loads((out / "results.json").read_text())["tasks"]
    baseline_record = json.loads(baseline_results.read_text())
    baseline = baseline_record["tasks"]
    tokenizer = json.loads((out / "tokenizer" / "tokenizer_report.json").read_text())
    rows = {}
    for task, entry in variant.items():
        metric = entry["main_metric"]
        ours, theirs = entry["metrics"][metric]["mean"], baseline[task]["metrics"][metric]["mean"]
        rows[task] = {"metric": metric, "variant": ours, "baseline": theirs, "difference": ours - theirs}
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


def write_card(recipe: VariantRecipe, args: VariantBuild, model_dir: Path, results: Path, card_dir: Path) -> None:
    """The same card briskbert-push-to-hub would publish, rendered from this run's records (license from the data)."""
    records = find_records(model_dir, results=results)
    card = render_card(records, repo_id=f"briskbert/briskbert-{recipe.variant}-{args.preset}",
                       base_model=args.base_model)
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
