"""The domain-variant kit: recipes load and name real tasks, stages skip when finished and redo when
half-written, and the tiny Tunisian, bio, legal and German variants run from corpus to card on the repo's own
data/ samples (no ../shared needed)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from briskbert.scripts.build_variant import main as build_variant_main
from briskbert.trainers.tasks.registry import TASKS
from briskbert.trainers.variants.build import VariantBuild, build_variant, check_baseline
from briskbert.trainers.variants.recipe import VariantRecipe
from briskbert.trainers.variants.report import plateau
from briskbert.trainers.variants.stages import STAGES, Stages
from launchers import console_script
from transformers import AutoTokenizer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RECIPES = sorted((REPO / "hub_configs" / "variants").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipes_load_and_name_registered_tasks(path):
    recipe = VariantRecipe.load(path)
    assert recipe.variant == path.stem
    assert recipe.tasks and all(task in TASKS for task in recipe.tasks), recipe.tasks
    assert recipe.license and recipe.license_note
    if recipe.variant in ("german", "tunisian", "legal"):
        assert "non-commercial" in recipe.license_note  # their corpora carry NC licenses
    if recipe.variant == "german":
        assert recipe.cased and recipe.strip_accents is False


def test_recipe_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("variant: x\ncorpus: [a]\ntasks: [sst2]\nvocab: 3\n")
    with pytest.raises(SystemExit, match=r"unknown field\(s\) \['vocab'\]"):
        VariantRecipe.load(bad)
    bad.write_text("variant: x\ncorpus: [a]\n")
    with pytest.raises(SystemExit, match=r"missing field\(s\) \['tasks'\]"):
        VariantRecipe.load(bad)


def test_stages_skip_finished_and_forget_from_a_stage(tmp_path):
    stages = Stages(tmp_path)
    assert not stages.done("corpus")
    stages.finish("corpus", {"files": []})
    stages.finish("tokenizer", {})
    assert stages.done("corpus") and stages.done("tokenizer")
    assert not list((tmp_path / "stages").glob(".*")), "the marker is renamed into place"
    stages.reset_from("tokenizer")
    assert stages.done("corpus") and not stages.done("tokenizer")
    assert STAGES == ("corpus", "convert", "tokenizer", "pretrain", "evaluate", "card", "compare", "report")


def test_a_stage_that_runs_again_makes_the_later_ones_run_again(tmp_path):
    stages = Stages(tmp_path)
    for stage in ("corpus", "tokenizer", "pretrain", "evaluate", "card"):
        stages.finish(stage, {})
    (tmp_path / "stages" / "evaluate.json").unlink()  # e.g. interrupted while scoring
    assert stages.done("pretrain") and not stages.done("evaluate")
    assert not stages.done("card"), "the card was rendered from the old scores"
    # a stage finished with other inputs (here: another baseline model) is not finished for these
    stages.finish("compare", {"baseline_model": "runs/general-a"})
    assert stages.done("compare", baseline_model="runs/general-a")
    assert not stages.done("compare", baseline_model="runs/general-b")


def test_tiny_tunisian_variant_end_to_end_and_resumes(tmp_path, tiny_briskbert, capfd):
    """On the repo's own Tunisian sample (TArC sentences, TSAC sentiment): corpus to card, then a rerun that adds a
    baseline model and runs only the comparison (a redone stage redoing the later ones: the Stages test above)."""
    out = tmp_path / "tunisian"
    command = [console_script("briskbert-build-variant"), "--variant", "tunisian", "--preset", "tiny",
               "--output-dir", str(out), "--data-dir", str(REPO / "data"), "--tasks", "tsac"]
    first = subprocess.run(command + ["--pretrain-args", "--max-steps", "6"], cwd=REPO, capture_output=True,
                           text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-4000:]
    assert "stage compare: no --baseline-model given, skipped" in first.stdout
    report = json.loads((out / "tokenizer" / "tokenizer_report.json").read_text())
    assert report["vocab_size"] % 64 == 0 and report["pieces_per_word"] < report["general_pieces_per_word"]
    results = json.loads((out / "results.json").read_text())
    assert set(results["tasks"]) == {"tsac"}
    assert (out / "card" / "README.md").is_file()
    assert not (out / "comparison.json").exists()

    # the baseline, added later, is scored on the same task with the same settings; nothing else runs again
    # (the rerun in this process: the same build_variant the console script calls, one interpreter start fewer)
    capfd.readouterr()
    build_variant_main(command[1:] + ["--baseline-model", str(tiny_briskbert)])
    again = capfd.readouterr()
    for stage in ("corpus", "tokenizer", "pretrain", "evaluate", "card"):
        assert f"stage {stage}: finished earlier, skipped" in again.out
    assert "stage compare: running" in again.out
    assert json.loads((out / "results.json").read_text()) == results
    baseline = json.loads((out / "baseline_results.json").read_text())
    assert baseline["model"] == str(tiny_briskbert) and set(baseline["tasks"]) == {"tsac"}
    assert baseline["tasks"]["tsac"]["hyperparameters"] == results["tasks"]["tsac"]["hyperparameters"]
    comparison = json.loads((out / "comparison.json").read_text())
    row = comparison["tasks"]["tsac"]
    assert row["metric"] == "accuracy"
    assert row["variant"] == results["tasks"]["tsac"]["metrics"]["accuracy"]["mean"]
    assert row["baseline"] == baseline["tasks"]["tsac"]["metrics"]["accuracy"]["mean"]
    assert row["difference"] == pytest.approx(row["variant"] - row["baseline"])
    assert comparison["variant_wins"] == int(row["difference"] > 0) and comparison["num_tasks"] == 1
    assert comparison["baseline_model"] == str(tiny_briskbert)
    # the baseline's own tokenizer, measured on the same corpus sample as the variant's
    assert comparison["pieces_per_word"]["variant"] == report["pieces_per_word"]
    assert comparison["pieces_per_word"]["baseline"] > report["pieces_per_word"]
    assert "| tsac | accuracy |" in again.out


def test_a_baseline_that_is_neither_a_folder_nor_a_hub_id_is_refused_before_any_work(tmp_path):
    out = tmp_path / "tunisian"
    missing = tmp_path / "general" / "pretrain" / "final"
    with pytest.raises(SystemExit, match="is neither a model folder nor a hub id.*leave the flag out"):
        build_variant(VariantBuild("tunisian", out, data_dir=REPO / "data", baseline_model=str(missing)))
    assert not (out / "stages").exists()
    check_baseline("briskbert/briskbert-general-mini")  # a hub id is taken as it is
    missing.mkdir(parents=True)
    check_baseline(str(missing))


# variant -> the one task its tiny run is scored on (data/ holds a sample of that task and of the recipe's corpus)
DOMAIN_RUNS = {"bio": "ncbi_disease", "legal": "overruling", "german": "germeval2018"}
# the card's license comes from its training data (trainers/hub/model_card.py), not from the recipe; for bio the data
# (CC BY 4.0 + MIT) gives apache-2.0 where the recipe says cc-by-4.0
CARD_LICENSE = {"bio": "apache-2.0"}


@pytest.mark.parametrize("variant,task", DOMAIN_RUNS.items(), ids=list(DOMAIN_RUNS))
def test_tiny_domain_variant_end_to_end_from_repo_data(tmp_path, variant, task):
    """Corpus to card on the repo's own samples (data/corpus/<domain>, data/<domain>/<task>), in a fresh process."""
    recipe = VariantRecipe.load(REPO / "hub_configs" / "variants" / f"{variant}.yaml")
    out = tmp_path / variant
    command = [sys.executable, str(REPO / "scripts" / "build_variant.py"), "--config", f"variants/{variant}",
               "--preset", "tiny",
               "--output-dir", str(out), "--data-dir", str(REPO / "data"), "--tasks", task,
               "--pretrain-args", "--max-steps", "6"]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    corpus = json.loads((out / "corpus.json").read_text())
    assert corpus["files"] and all(f"data/{recipe.corpus[0]}/" in f for f in corpus["files"]), corpus["files"]
    report = json.loads((out / "tokenizer" / "tokenizer_report.json").read_text())
    assert report["vocab_size"] % 64 == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["tasks"]) == {task}
    card = (out / "card" / "README.md").read_text()
    assert f"license: {CARD_LICENSE.get(variant, recipe.license)}" in card
    if "non-commercial" in recipe.license_note:
        assert "non-commercial" in card
    if variant == "bio":  # a tokenizer trained on biomedical text splits it into fewer pieces than BERT's
        assert report["pieces_per_word"] <= report["general_pieces_per_word"], report
    if variant == "german":  # cased, umlauts and eszett kept: a real sentence's words come back whole
        tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")
        lines = (REPO / "data" / "corpus" / "german" / "ud_german_gsd_dev_test_sentences.txt").read_text("utf-8")
        sentence = next(line for line in lines.splitlines() if re.search("[äöü]", line) and "ß" in line)
        pieces = tokenizer.tokenize(sentence)
        words = []
        for piece in pieces:
            if piece.startswith("##") and words:
                words[-1] += piece[2:]
            else:
                words.append(piece)
        assert "[UNK]" not in pieces
        expected = re.findall(r"\w+", sentence)
        assert [w for w in words if re.fullmatch(r"\w+", w)] == expected, (sentence, pieces)
        assert any(re.search("[äöüß]", w) for w in expected) and any(w[0].isupper() for w in expected)


def test_bio_from_bert_compares_briskbert_with_bert_for_masked_lm_and_no_adaptation(tmp_path, capfd):
    """The bundled bio-from-bert recipe at a tiny budget on data/'s samples: the shipped all-MiniLM-L6-v2 converted,
    both adaptations trained side by side on the same packed rows, three models scored with equal settings, the
    report written; a rerun redoes nothing."""
    recipe = yaml.safe_load((REPO / "hub_configs" / "variants" / "bio-from-bert.yaml").read_text())
    budget = {"micro_batch_size": 4, "max_seq_length": 64, "eval_every": 3, "eval_rows": 8, "save_every": 3,
              "log_every": 1}
    recipe.update(tasks=["ncbi_disease"], seeds=1, max_train_samples=32, max_eval_samples=40,
                  finetune={"num_train_epochs": 1, "max_seq_length": 64}, extend_tokens=16,
                  pretrain={**budget, "max_steps": 3, "head_warmup_steps": 1},
                  pretrain_on=["corpus", "tasks"], task_pretrain={**budget, "max_steps": 2, "eval_every": 2},
                  fill_mask=["patients with type 2 [MASK] were treated with metformin ."])
    (tmp_path / "bio-from-bert.yaml").write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    command = [console_script("briskbert-build-variant"), "--config", str(tmp_path / "bio-from-bert.yaml"),
               "--output-dir", str(out), "--data-dir", str(REPO / "data")]
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "max abs difference" in first.stdout  # the conversion checked itself against the BERT
    a, b = (json.loads((out / run / "summary.json").read_text()) for run in ("pretrain", "bert-pretrain"))
    assert (a["model_type"], b["model_type"]) == ("briskbert", "bert")
    assert a["steps"] == b["steps"] == 3 and a["tokens_seen"] == b["tokens_seen"]  # the same packed rows
    assert a["parameters"] == pytest.approx(b["parameters"], rel=1e-3)
    for run in ("pretrain", "bert-pretrain"):  # the new MLM head warmed up alone first, in both
        phases = [json.loads(line).get("phase") for line in (out / run / "metrics.jsonl").read_text().splitlines()]
        assert phases == ["head", "all", "all"]
    tokenizer = json.loads((out / "tokenizer" / "tokenizer_report.json").read_text())
    assert tokenizer["new_tokens"] == 16 and tokenizer["pieces_per_word"] < tokenizer["general_pieces_per_word"]
    assert tokenizer["task_text_pieces_per_word"] <= tokenizer["general_task_text_pieces_per_word"]
    # task-adaptive pretraining: both go on from their domain runs over the task's training text, labels left out
    task_text = (out / "task-text" / "train.txt").read_text().splitlines()
    train_rows = [json.loads(line) for line in (REPO / "data/biomedical/ncbi_disease/train.jsonl").read_text().splitlines()]
    assert task_text == [" ".join(row["tokens"]) for row in train_rows]
    ta, tb = (json.loads((out / run / "config.json").read_text()) for run in ("task-pretrain", "bert-task-pretrain"))
    assert ta["init_from"] == str(out / "pretrain" / "final") and tb["init_from"] == str(out / "bert-pretrain" / "final")
    assert ta["train_data"] == tb["train_data"] == [str(out / "task-text" / "train.txt")]
    assert json.loads((out / "task-pretrain" / "summary.json").read_text())["steps"] == 2
    assert AutoTokenizer.from_pretrained(out / "task-pretrain" / "final").vocab_size == tokenizer["vocab_size"]
    report = json.loads((out / "report.json").read_text())
    assert [phase["text"] for phase in report["phases"]] == ["corpus", "tasks"]
    for key in ("a", "b"):  # what each model puts in the [MASK] after each stage
        for stage in ("corpus", "tasks"):
            assert len(report["fill_mask"][key][stage]["patients with type 2 [MASK] were treated with metformin ."]) == 5
    for key in ("a", "b"):  # the encoders' features after adaptation, against the unadapted BERT's, per layer
        assert [row["layer"] for row in report["feature_drift"][key]] == list(range(7))
        assert all(0 < row["cka"] <= 1 + 1e-9 for row in report["feature_drift"][key])
    assert report["recipe"]["pretrain_on"] == ["corpus", "tasks"]
    row = report["tasks"]["ncbi_disease"]
    assert row["metric"] == "f1"
    for key, results in (("a", "results.json"), ("b", "bert_results.json"), ("c", "baseline_results.json")):
        scored = json.loads((out / results).read_text())["tasks"]["ncbi_disease"]
        assert row[key]["mean"] == scored["metrics"]["f1"]["mean"]
        assert scored["train_examples"] == 32 and scored["eval_examples"] == 40
    assert json.loads((out / "baseline_results.json").read_text())["model"] == str(out / "converted")
    assert json.loads((out / "results.json").read_text())["model"] == str(out / "task-pretrain" / "final")
    # (b) is scored through its exact BriskBERT conversion, so the three are fine-tuned by the same code
    assert json.loads((out / "bert_results.json").read_text())["model"] == str(out / "bert-adapted-converted")
    assert set(report["pretraining"]) == {"a", "b"} and len(report["targets"]) == 4
    assert row["c_plateau"] is None  # one seed: no spread to measure the last epoch's change against
    assert report["reproduce"] == (f"briskbert-build-variant --variant {tmp_path / 'bio-from-bert.yaml'} "
                                   f"--output-dir {out} --data-dir {REPO / 'data'}")
    assert report["pretraining"]["b"]["config"]["model_type"] == "bert"
    assert (out / "report.png").stat().st_size > 10_000
    card = (out / "card" / "README.md").read_text()
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in card
    assert "BriskBertModel has none, so its transform" in card  # the MLM head it had to start
    # both pretraining stages, and the task text's license with the corpus's
    assert "| stage 1 (corpus/biomedical): masked-LM head warm-up | the first 1 steps train the head alone" in card
    assert "| stage 2 (task-text/train.txt): optimizer steps | 2 |" in card
    assert "| `ncbi_disease (training rows, labels left out)` | CC BY 4.0 |" in card

    capfd.readouterr()
    build_variant_main(command[1:])  # the rerun in this process: every stage is skipped
    again = capfd.readouterr().out
    for stage in ("corpus", "convert", "tokenizer", "pretrain", "evaluate", "card", "compare", "report"):
        assert f"stage {stage}: finished earlier, skipped" in again
    assert json.loads((out / "report.json").read_text()) == report


def test_the_plateau_compares_the_last_epochs_change_of_the_mean_with_the_seed_spread():
    """(c)'s fine-tuning has converged when its last epoch moves the mean over seeds by less than their spread."""
    rising = [{"history": [0.70, 0.84, 0.86]}, {"history": [0.72, 0.86, 0.85]}, {"history": [0.71, 0.82, 0.87]}]
    measured = plateau(rising)
    assert measured["mean_by_evaluation"] == pytest.approx([0.71, 0.84, 0.86])
    assert measured["last_change"] == pytest.approx(0.02) and measured["last_spread"] == pytest.approx(0.01)
    assert measured["at_plateau"] is False  # the last epoch gained twice the spread: not converged
    climbing = [{"history": [0.70, 0.80]}, {"history": [0.71, 0.81]}]
    assert plateau(climbing)["at_plateau"] is False
    settled = [{"history": [0.70, 0.850]}, {"history": [0.71, 0.830]}, {"history": [0.69, 0.842]}]
    assert plateau([{**run, "history": [*run["history"], run["history"][-1] + 0.001]} for run in settled])["at_plateau"]
    assert plateau([{"history": [0.8, 0.9]}]) is None  # one seed
    assert plateau([{"history": [0.8, 0.9]}, {"history": [0.8]}]) is None  # runs stopped at different epochs
    assert plateau(None) is None


def test_an_extended_tokenizer_gives_briskbert_and_bert_for_masked_lm_the_same_new_rows(tmp_path, data_dir):
    """Vocabulary adaptation for (a) and (b) alike: the converted BERT and transformers' BertForMaskedLM of the same
    checkpoint grow to the same size, and each new piece starts as the same mean of its old pieces' embeddings."""
    from briskbert.trainers.conversion.convert import convert
    from briskbert.trainers.data.corpus import read_texts
    from briskbert.trainers.data.tokenizer import extend_tokenizer
    from briskbert.trainers.pretraining.loop import PretrainConfig
    from briskbert.trainers.pretraining.models import build_tokenizer_and_model
    from briskbert.trainers.resources import base_bert

    bert = base_bert()
    convert("bert", bert, tmp_path / "converted")
    texts = read_texts(str(data_dir / "corpus" / "biomedical"), "text", 2000)
    extended, new_tokens = extend_tokenizer(AutoTokenizer.from_pretrained(bert), texts, 40)
    extended.save_pretrained(tmp_path / "tokenizer")
    assert len(new_tokens) == 40
    ours, briskbert_model = build_tokenizer_and_model(PretrainConfig(init_from=str(tmp_path / "converted"),
                                                                     tokenizer=str(tmp_path / "tokenizer")), None, print)
    _, bert_model = build_tokenizer_and_model(PretrainConfig(init_from=bert, tokenizer=str(tmp_path / "tokenizer"),
                                                             model_type="bert"), None, print)
    assert type(bert_model).__name__ == "BertForMaskedLM"
    rows = len(ours)
    a = briskbert_model.get_input_embeddings().weight[:rows]
    b = bert_model.get_input_embeddings().weight[:rows]
    assert briskbert_model.get_input_embeddings().num_embeddings == bert_model.get_input_embeddings().num_embeddings
    torch.testing.assert_close(a, b)
    new_ids = ours.convert_tokens_to_ids(new_tokens)
    assert min(new_ids) >= 30522
    pieces = AutoTokenizer.from_pretrained(bert)(new_tokens[0].removeprefix("##"), add_special_tokens=False)
    torch.testing.assert_close(a[new_ids[0]], b[pieces["input_ids"]].mean(0))


def test_a_from_bert_build_scores_with_the_tasks_own_protocol_unless_capped(tmp_path):
    """The tiny preset caps its fine-tunes (a smoke test); a from-bert build's model is a real BERT, so its scores
    take every training and validation row the tasks' protocol takes, unless the recipe or the command line caps."""
    from briskbert.trainers.variants.build import evaluation_flags

    recipe = VariantRecipe.load(REPO / "hub_configs" / "variants" / "bio-from-bert.yaml")
    build = VariantBuild("bio-from-bert", tmp_path, data_dir=Path("data"))
    flags = evaluation_flags(build, recipe, "from-bert")
    assert "--max-train-samples" not in flags and "--max-eval-samples" not in flags and "--" not in flags
    assert flags[flags.index("--seeds") + 1] == "3"
    assert "--max-train-samples" in evaluation_flags(build, recipe, "scratch")  # the tiny preset's smoke test
    capped = evaluation_flags(VariantBuild("bio-from-bert", tmp_path, max_train_samples=32), recipe, "from-bert")
    assert capped[capped.index("--max-train-samples") + 1] == "32"
