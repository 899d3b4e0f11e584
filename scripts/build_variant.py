"""Build a domain variant of BriskBERT with one command, stage by stage: corpus -> tokenizer -> pretraining ->
downstream scores -> model card. Each stage stops at its artifact and is skipped on a rerun once finished.

    python scripts/build_variant.py --variant bio --preset tiny --output-dir runs/bio-tiny --data-dir ../shared/data
    python scripts/build_variant.py --variant general --preset mini --output-dir runs/general-mini ...
    python scripts/build_variant.py --variant bio --preset mini --strategy continue \
        --base-model runs/general-mini/pretrain/final --output-dir runs/bio-mini-continue ...
    ... --from-stage evaluate          # redo from a stage on (e.g. after changing the tasks)
    ... --compare-with runs/general-mini runs/bio-mini-continue   # print the scores side by side
    ... --baseline-model runs/general-mini/pretrain/final         # score the general model beside it (compare)

Strategies: `scratch` trains a new tokenizer on the domain corpus and pretrains from random weights;
`continue` extends the base model's tokenizer with the domain's most used unseen pieces and continues
pretraining the base model (which wins depends on the budget; run both and compare). Writes <dir>/tokenizer/,
<dir>/pretrain/, <dir>/results.json and <dir>/card/README.md. With --baseline-model (the general BriskBERT of the
same size and budget) the last stage, compare, scores that model on the same tasks with the same settings
(<dir>/baseline_results.json) and writes <dir>/comparison.json: both main metrics per task and both tokenizers'
word pieces per word on the domain corpus. It may be added later: a rerun with --baseline-model runs only it.
"""

import argparse
import json
import re
import subprocess
import sys
from itertools import islice
from pathlib import Path

from transformers import AutoTokenizer

from briskbert.trainers.corpus import load_corpus, resolve_files
from briskbert.trainers.model_card import find_records, render_card
from briskbert.trainers.tokenizer import ARABIC_NORMALIZERS, extend_tokenizer, train_wordpiece
from briskbert.trainers.variants import STAGES, STRATEGIES, Stages, VariantRecipe

REPO = Path(__file__).resolve().parent.parent
# the pretraining recipe and budget of each preset (scripts/pretrain.py flags)
PRESET_PRETRAINING = {
    "tiny": ("hub_configs/tiny-cpu.yaml", ["--max-steps", "40", "--eval-every", "20", "--save-every", "20"]),
    "mini": ("hub_configs/mini.yaml", ["--max-steps", "400", "--max-minutes", "30", "--eval-every", "50",
                                       "--save-every", "100"]),
    "base": ("hub_configs/base.yaml", []),
}
# tiny proves the path end to end (CI runs it per variant), so its fine-tunes are a few steps, not a score
PRESET_EVALUATION = {"tiny": ["--seeds", "1", "--max-train-samples", "64", "--max-eval-samples", "100"],
                     "mini": ["--seeds", "1"], "base": ["--seeds", "3"]}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", required=True, help="a recipe name in hub_configs/variants/ (or a YAML path)")
    parser.add_argument("--preset", choices=sorted(PRESET_PRETRAINING), default="tiny")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--strategy", choices=STRATEGIES, default="scratch")
    parser.add_argument("--base-model", default=None, help="continue: the general BriskBERT to start from")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data", help="folder laid out like ../shared/data")
    parser.add_argument("--from-stage", choices=STAGES, default=None)
    parser.add_argument("--tasks", default=None, help="comma-separated tasks instead of the recipe's")
    parser.add_argument("--pretrain-args", nargs=argparse.REMAINDER, default=[],
                        help="extra scripts/pretrain.py flags, e.g. --pretrain-args --max-steps 100 (last option)")
    parser.add_argument("--compare-with", nargs="*", type=Path, default=[], help="other variant run folders")
    parser.add_argument("--baseline-model", default=None,
                        help="a general model (folder or hub id) scored on the same tasks for comparison (the "
                        "compare stage; its tokenizer's pieces/word too)")
    parser.add_argument("--max-train-samples", type=int, default=None, help="cap each task's training rows")
    parser.add_argument("--max-eval-samples", type=int, default=None, help="cap each task's scored rows")
    args = parser.parse_args(argv)
    if args.strategy == "continue" and not args.base_model:
        parser.error("--strategy continue needs --base-model (e.g. the `general` variant's pretrain/final folder, "
                     "or a BriskBERT hub id)")
    return args


def run(command: list[str]) -> None:
    print("$", " ".join(command), flush=True)
    if subprocess.run(command, cwd=REPO, stdin=subprocess.DEVNULL).returncode != 0:
        raise SystemExit(f"stage command failed: {' '.join(command)}; rerun build_variant.py to resume here.")


def corpus_sources(recipe: VariantRecipe, data_dir: Path) -> list[str]:
    local = [data_dir / item for item in recipe.corpus]
    if all(path.exists() for path in local):
        return [str(path) for path in local]
    if recipe.corpus_hub_id:
        return [recipe.corpus_hub_id]
    raise SystemExit(f"Corpus {recipe.corpus} not found under {data_dir} and the recipe names no corpus_hub_id: "
                     f"pass --data-dir pointing at a folder laid out like ../shared/data.")


def main(argv=None):
    args = parse_args(argv)
    recipe_path = Path(args.variant) if args.variant.endswith(".yaml") else REPO / "hub_configs" / "variants" / f"{args.variant}.yaml"
    recipe = VariantRecipe.load(recipe_path)
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
        command = [sys.executable, str(REPO / "scripts" / "pretrain.py"), "--config", str(REPO / recipe_file),
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
    evaluate = [sys.executable, str(REPO / "scripts" / "evaluate.py")]
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
                     f"first (build_variant.py --variant general ...) and pass its <dir>/pretrain/final, or leave the "
                     f"flag out now and add it in a rerun, which only runs the comparison.")


def reference_tokenizer(args) -> str:
    """What the new tokenizer is first measured against: the base model's (continue), else BERT's uncased one."""
    return str(args.base_model or REPO / "data" / "tokenizer")


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


def pieces_per_word(tokenizer, texts: list[str]) -> float:
    words = sum(len(text.split()) for text in texts)
    return round(sum(len(tokenizer.tokenize(text)) for text in texts) / max(words, 1), 3)


def write_card(recipe: VariantRecipe, args, model_dir: Path, results: Path, card_dir: Path) -> None:
    """The same card push_to_hub.py would publish, rendered from this run's records (license from the data)."""
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


if __name__ == "__main__":
    main()
