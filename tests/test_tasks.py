"""The task registry: every task loads from a local folder, becomes model features and is scored by its metric;
feature alignment (NER first sub-token, QA windows and offsets) is exact; bad data fails with a message that
names the fix; the registry matches the real development data in ../shared/data (skipped where absent)."""

import json
import math
import warnings
from pathlib import Path

import datasets
import pytest
import torch
import transformers
from accelerate import Accelerator
from briskbert.trainers.config import check_fields
from briskbert.trainers.finetuning.loop import FinetuneConfig
from briskbert.trainers.tasks.features import (
    build_features,
    collate,
    metric_inputs,
)
from briskbert.trainers.tasks.registry import (
    ALIASES,
    SUITES,
    TASKS,
    _from_hub_schema,
    expand_tasks,
    get_task,
    has_local_data,
    load_registry,
    load_task_data,
    training_texts,
)
from briskbert.trainers.tasks.scoring import predict, score
from task_data import SHARED, write_jsonl, write_task

from briskbert import BriskBertConfig

REPO = Path(__file__).resolve().parents[1]

def test_registry_covers_the_benchmarks():
    assert SUITES["glue"] == ("cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb", "wnli")
    assert set(SUITES["superglue"]) == {"rte", "boolq", "cb", "copa", "multirc", "wic", "wsc"}
    assert set(SUITES["ner"]) == {"conll2003", "ncbi_disease", "bc5cdr", "germeval2014", "german_ler"}
    assert SUITES["qa"] == ("squad",)
    assert {"pubmedqa", "unfair_tos", "overruling", "germeval2018", "tsac", "tunizi"} <= set(SUITES["classification"])
    assert [s.name for s in TASKS["mnli"].splits] == ["mnli", "mnli_mismatched"]
    assert ALIASES == {"mnli_mismatched": "mnli"} and get_task("mnli_mismatched").name == "mnli"
    assert expand_tasks("sst2, glue,squad")[:2] == ["sst2", "cola"] and expand_tasks("glue,squad")[-1] == "squad"
    assert TASKS["sst2"].hub_id == "nyu-mll/glue" and TASKS["copa"].hub_id == "aps/super_glue"
    assert TASKS["conll2003"].hub_id == "eriktks/conll2003" and TASKS["squad"].hub_id == "rajpurkar/squad"
    assert sorted(TASKS) == sorted(path.stem for path in (REPO / "hub_configs" / "tasks").glob("*.yaml"))
    for task in TASKS.values():  # one file says everything the harness, the table and the card need
        assert task.main_metric in task.metrics_shown and task.display and task.license is not None
        assert task.finetune and check_fields(task.finetune, FinetuneConfig, task.name) == task.finetune
    assert [split.display for split in TASKS["mnli"].splits] == ["MNLI-m", "MNLI-mm"]
    assert TASKS["sst2"].display == "SST-2" and TASKS["sst2"].splits[0].display == "SST-2"
    assert TASKS["wic"].license.non_commercial and TASKS["squad"].percent
    assert TASKS["copa"].head.auto_class == "AutoModelForMultipleChoice"


def test_a_task_is_one_file(tmp_path):
    """A new task is one YAML file: the registry loads it with its display name, license, columns, defaults, metric;
    a key the schema does not know, or a metric module that does not exist, names the file."""
    (tmp_path / "imdb.yaml").write_text(
        "display: IMDb\nkind: classification\nsuites: [classification]\nhub_id: stanfordnlp/imdb\nhub_config: null\n"
        "local_dir: imdb\ncolumns: [text]\nlabels: [neg, pos]\nmetric: classification\nmetric_config: binary\n"
        "main_metric: accuracy\nlicense: {name: research use, language: en, unknown: true}\n"
        "finetune: {learning_rate: 2.0e-5, num_train_epochs: 2}\n")
    task = load_registry(tmp_path)["imdb"]
    assert (task.display, task.columns, task.labels) == ("IMDb", ("text",), ("neg", "pos"))
    assert task.metric == "classification" and task.head.name == "BriskBertForSequenceClassification"
    assert task.license.unknown and task.finetune == {"learning_rate": 2e-5, "num_train_epochs": 2}
    (tmp_path / "imdb.yaml").write_text("kind: classification\nmetrik: glue\n")
    with pytest.raises(ValueError, match=r"imdb.yaml has unknown key\(s\) \['metrik'\]"):
        load_registry(tmp_path)
    (tmp_path / "imdb.yaml").write_text("kind: classification\nhub_id: x\nhub_config: null\nlocal_dir: x\n"
                                        "columns: [text]\nmetric: bleu\n")
    with pytest.raises(ValueError, match="imdb.yaml: metric 'bleu' is not one of"):
        load_registry(tmp_path)


@pytest.fixture(scope="module")
def accelerator():
    # the same flags as finetune(): accelerate's state is shared by every Accelerator of the process
    return Accelerator(cpu=torch.accelerator.current_accelerator() is None)


def tiny_model(task, tokenizer):
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                         num_labels=max(task.num_labels, 1))
    return getattr(transformers, task.head.auto_class).from_config(config).eval()


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_loads_from_a_local_folder_and_is_scored(name, tmp_path, tokenizer, accelerator):
    task = TASKS[name]
    write_task(tmp_path, name, n_train=6, n_validation=10)
    assert has_local_data(task, tmp_path)
    data = load_task_data(task, tmp_path)
    assert list(data) == ["train", *(s.name for s in task.splits)]
    model = tiny_model(task, tokenizer)
    for split in task.splits:
        features = build_features(task, tokenizer, data[split.name], max_length=128, doc_stride=32)
        loader = torch.utils.data.DataLoader(features, batch_size=4, collate_fn=lambda f: collate(f, 0))
        outputs = predict(model, loader, accelerator, task.kind)
        assert len(outputs) == len(features)
        scores = score(task, *metric_inputs(task, data[split.name], features, outputs))
        assert set(task.table_metrics) <= set(scores), scores
        assert all(math.isfinite(v) or task.kind == "regression" for v in scores.values()), scores


def test_mnli_scores_matched_and_mismatched_from_a_synthetic_file(tmp_path):
    write_task(tmp_path, "mnli")
    files = sorted(p.name for p in (tmp_path / "glue" / "mnli").iterdir())
    assert files == ["train.jsonl", "validation_matched.jsonl", "validation_mismatched.jsonl"]
    data = load_task_data(TASKS["mnli"], tmp_path)
    assert set(data) == {"train", "mnli", "mnli_mismatched"} and set(data["train"].column_names) >= {"premise", "hypothesis"}


def test_max_train_samples_is_a_fixed_subset_and_eval_keeps_the_first_rows(tmp_path):
    write_task(tmp_path, "sst2", n_train=20, n_validation=10)
    first = load_task_data(TASKS["sst2"], tmp_path, max_train_samples=5, max_eval_samples=3)
    again = load_task_data(TASKS["sst2"], tmp_path, max_train_samples=5, max_eval_samples=3)
    full = load_task_data(TASKS["sst2"], tmp_path)
    assert first["train"]["sentence"] == again["train"]["sentence"] and len(first["train"]) == 5
    assert first["sst2"]["sentence"] == full["sst2"]["sentence"][:3]


def test_ner_labels_sit_on_the_first_sub_token_and_come_back_to_words(tokenizer):
    task = TASKS["conll2003"]
    rows = [{"tokens": ["Dziekanowski", "beat", "Schwarzenegger", "."], "ner_tags": [5, 0, 1, 0]}]
    feature = build_features(task, tokenizer, rows, max_length=32)[0]
    pieces = tokenizer.convert_ids_to_tokens(feature["input_ids"])
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]"
    words = [tokenizer.tokenize(w) for w in rows[0]["tokens"]]
    assert len(words[0]) > 1 and len(words[2]) > 1, "the test needs words split into several pieces"
    expected = [-100]
    for word, tag in zip(words, rows[0]["ner_tags"]):
        expected += [tag] + [-100] * (len(word) - 1)
    assert feature["labels"] == expected + [-100]
    # predictions go back to words from each word's first piece
    logits = torch.full((len(expected) + 1, 9), -1.0)
    for word, position in feature["_first_tokens"].items():
        logits[position, rows[0]["ner_tags"][word]] = 1.0
    predictions, references = metric_inputs(task, rows, [feature], [logits.numpy()])
    assert predictions == references == [["B-LOC", "O", "B-PER", "O"]]
    # a word cut off by truncation is predicted "O", and still scored
    cut = build_features(task, tokenizer, rows, max_length=4)[0]
    predictions, _ = metric_inputs(task, rows, [cut], [torch.zeros(4, 9).numpy()])
    assert len(predictions[0]) == 4 and predictions[0][3] == "O"


def test_qa_windows_overlap_and_answers_map_back_to_the_exact_text(tokenizer):
    context = " ".join(f"Sentence number {i} is about nothing in particular." for i in range(40))
    answer = "Sentence number 31"
    row = {"id": "q1", "question": "Which sentence?", "context": context,
           "answers": {"text": [answer], "answer_start": [context.index(answer)]}}
    features = build_features(TASKS["squad"], tokenizer, [row], max_length=64, doc_stride=16)
    assert len(features) > 5, "a long context must be split into several windows"
    holding = [f for f in features if f["start_positions"] != 0]
    assert holding, "some window must hold the answer"
    for feature in holding:
        start, end = feature["_offsets"][feature["start_positions"]][0], feature["_offsets"][feature["end_positions"]][1]
        assert context[start:end] == answer
    for feature in features:
        if feature not in holding:
            assert feature["end_positions"] == 0  # [CLS]
    # n-best: the best valid span over all windows wins; spans in the question or reversed are never chosen
    outputs = []
    for feature in features:
        start_logits, end_logits = torch.zeros(len(feature["input_ids"])), torch.zeros(len(feature["input_ids"]))
        start_logits[1] = end_logits[1] = 50.0  # inside the question: invalid
        if feature is holding[0]:
            start_logits[feature["start_positions"]] = end_logits[feature["end_positions"]] = 10.0
        outputs.append((start_logits.numpy(), end_logits.numpy()))
    predictions, references = metric_inputs(TASKS["squad"], [row], features, outputs)
    assert predictions == [{"id": "q1", "prediction_text": answer}]
    assert score(TASKS["squad"], predictions, references) == {"exact_match": 100.0, "f1": 100.0}


def test_copa_becomes_two_choices_and_multirc_keeps_its_ids(tokenizer):
    rows = [{"premise": "The man broke his toe.", "choice1": "He dropped a hammer.", "choice2": "He ran.",
             "question": "cause", "idx": 0, "label": 0}]
    feature = build_features(TASKS["copa"], tokenizer, rows, max_length=32)[0]
    assert len(feature["input_ids"]) == 2
    assert tokenizer.decode(feature["input_ids"][0], skip_special_tokens=True) == \
        "the man broke his toe because he dropped a hammer."
    batch = collate([feature, feature], pad_token_id=0)
    assert batch["input_ids"].shape[:2] == (2, 2) and batch["labels"].tolist() == [0, 0]
    multirc = [{"paragraph": "p", "question": "q", "answer": "a", "idx": {"paragraph": 1, "question": 2, "answer": 3},
                "label": 1}]
    predictions, _ = metric_inputs(TASKS["multirc"], multirc, [{}], [torch.tensor([0.0, 1.0]).numpy()])
    assert predictions == [{"idx": {"paragraph": 1, "question": 2, "answer": 3}, "prediction": 1}]


# ---- bad data: each stops with a message naming the fix


def test_unknown_task_names_the_known_ones():
    with pytest.raises(SystemExit, match="Unknown task 'sst3'.*sst2"):
        get_task("sst3")
    with pytest.raises(SystemExit, match="Unknown task"):
        expand_tasks("glue,nope")


def test_wrong_column_name_is_named_with_the_expected_schema(tmp_path):
    write_jsonl(tmp_path / "glue/mrpc/train.jsonl", [{"text1": "a", "sentence2": "b", "label": 0}])
    write_jsonl(tmp_path / "glue/mrpc/validation.jsonl", [{"sentence1": "a", "sentence2": "b", "label": 0}])
    with pytest.raises(SystemExit, match=r"no column\(s\) \['sentence1'\].*rename the column"):
        load_task_data(TASKS["mrpc"], tmp_path)


def test_label_outside_the_label_set(tmp_path):
    write_jsonl(tmp_path / "glue/sst2/train.jsonl", [{"sentence": "fine", "label": 1}, {"sentence": "bad", "label": 2}])
    write_jsonl(tmp_path / "glue/sst2/validation.jsonl", [{"sentence": "ok", "label": -1}])
    with pytest.raises(SystemExit, match=r"row 1 .* label=2, outside the label set \{0: 'negative', 1: 'positive'\}"):
        load_task_data(TASKS["sst2"], tmp_path)
    write_jsonl(tmp_path / "glue/sst2/train.jsonl", [{"sentence": "fine", "label": 1}])
    with pytest.raises(SystemExit, match="unlabelled test split"):
        load_task_data(TASKS["sst2"], tmp_path)
    write_jsonl(tmp_path / "german/germeval2018/train.jsonl", [{"text": "x", "label_coarse": "OFFENSIVE"}])
    write_jsonl(tmp_path / "german/germeval2018/validation.jsonl", [{"text": "x", "label_coarse": "OTHER"}])
    with pytest.raises(SystemExit, match="label_coarse='OFFENSIVE', outside the label set"):
        load_task_data(TASKS["germeval2018"], tmp_path)


def test_a_scored_split_of_one_class_is_flagged(tmp_path):
    # as the shared TUNIZI validation file: its last rows of a file sorted by polarity, all negative
    write_jsonl(tmp_path / "glue/sst2/train.jsonl", [{"sentence": "fine", "label": 1}, {"sentence": "bad", "label": 0}])
    write_jsonl(tmp_path / "glue/sst2/validation.jsonl", [{"sentence": s, "label": 0} for s in ("dull", "flat")])
    with pytest.warns(UserWarning, match="sst2: every row of .*validation.jsonl has the same label.*says nothing"):
        load_task_data(TASKS["sst2"], tmp_path)
    both = [{"sentence": "dull", "label": 0}, {"sentence": "ok", "label": 1}]
    write_jsonl(tmp_path / "glue/sst2/validation.jsonl", both)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_task_data(TASKS["sst2"], tmp_path)


def test_other_bad_data(tmp_path):
    write_jsonl(tmp_path / "conll2003/train.jsonl", [{"tokens": ["a", "b"], "ner_tags": [0]}])
    write_jsonl(tmp_path / "conll2003/validation.jsonl", [{"tokens": ["a"], "ner_tags": [0]}])
    with pytest.raises(SystemExit, match="2 tokens but 1 ner_tags"):
        load_task_data(TASKS["conll2003"], tmp_path)
    write_jsonl(tmp_path / "conll2003/train.jsonl", [{"tokens": ["a"], "ner_tags": [0]}])
    (tmp_path / "conll2003/labels.json").write_text(json.dumps({"ner_tags": ["O", "B-LOC", "I-LOC"]}))
    with pytest.raises(SystemExit, match="re-encode the data with the task's label order"):
        load_task_data(TASKS["conll2003"], tmp_path)
    with pytest.raises(SystemExit, match=r"no train file in .*glue/cola.*drop --data-dir"):
        load_task_data(TASKS["cola"], tmp_path)


def test_hub_schemas_are_renamed_and_relabelled():
    # TUNIZI on the Hub: `sentence`, and `target` with names ("1", "-1") = (positive, negative)
    hub = datasets.Dataset.from_dict({"sentence": ["behi", "khayeb"], "target": [0, 1]})
    ours = _from_hub_schema(TASKS["tunizi"], hub)
    assert ours.column_names == ["text", "label"] and ours["label"] == [1, 0]
    hub = datasets.Dataset.from_dict({"tokens": [["a", "b", "c"]], "tags": [[1, 2, 4]]})
    assert _from_hub_schema(TASKS["bc5cdr"], hub)["ner_tags"] == [[1, 3, 2]]


# ---- the registry against the real development data


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data (the real development data) is not here")
@pytest.mark.parametrize("name", [n for n in TASKS if n not in ("mnli", "qqp", "qnli", "boolq")])
def test_registry_matches_the_real_development_data(name):
    task = TASKS[name]
    assert has_local_data(task, SHARED), f"{task.local_dir} is missing from ../shared/data"
    data = load_task_data(task, SHARED, max_train_samples=64, max_eval_samples=64)
    assert 0 < len(data["train"]) <= 64
    if task.labels:
        column = data[task.splits[0].name][task.label_column]
        values = {t for tags in column for t in tags} if task.kind == "token_classification" else set(column)
        assert values <= set(range(len(task.labels)))


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data (the real development data) is not here")
def test_suites_skip_what_the_development_data_lacks():
    missing = [n for n in TASKS if not has_local_data(TASKS[n], SHARED)]
    assert sorted(missing) == ["boolq", "mnli", "qnli", "qqp"]


def test_training_texts_are_the_inputs_without_their_labels(tmp_path):
    """What task-adaptive pretraining reads: each training row's input text (never a validation row, never a label)."""
    data = tmp_path / "data"
    for name in ("conll2003", "mrpc", "squad", "copa", "pubmedqa"):
        write_task(data, name, n_train=3, n_validation=2)
    rows = {name: [json.loads(line) for line in (data / TASKS[name].local_dir / "train.jsonl").read_text().splitlines()]
            for name in ("conll2003", "mrpc", "squad", "copa", "pubmedqa")}
    assert training_texts(get_task("conll2003"), data) == [" ".join(row["tokens"]) for row in rows["conll2003"]]
    assert training_texts(get_task("mrpc"), data) == [f"{r['sentence1']} {r['sentence2']}" for r in rows["mrpc"]]
    assert training_texts(get_task("squad"), data) == [f"{r['question']} {r['context']}" for r in rows["squad"]]
    copa = training_texts(get_task("copa"), data)
    assert all(row["premise"].rstrip(".") in text and row["choice1"][1:] in text and row["choice2"][1:] in text
               for row, text in zip(rows["copa"], copa))
    pubmedqa = training_texts(get_task("pubmedqa"), data)
    assert pubmedqa == [f"{r['question']} {' '.join(r['context']['contexts'])}" for r in rows["pubmedqa"]]
