"""The project's `evaluate` metric modules, loaded offline by path, against scikit-learn, scipy, seqeval and the
official SQuAD v1.1 evaluation script on fixed inputs, and against values worked out by hand."""

import re
import string
from collections import Counter

import evaluate
import pytest
from scipy.stats import pearsonr, spearmanr
from seqeval.metrics import f1_score as seqeval_f1
from seqeval.metrics import precision_score as seqeval_precision
from seqeval.metrics import recall_score as seqeval_recall
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from briskbert.metrics import metric_path

PREDICTIONS = [0, 1, 1, 0, 1, 1, 0, 0, 1, 0, 2, 2]
REFERENCES = [0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 2, 0]


def load(name, config=None):
    return evaluate.load(metric_path(name), config, keep_in_memory=True)


def test_glue_matches_sklearn_and_scipy():
    binary_p, binary_r = PREDICTIONS[:10], REFERENCES[:10]
    assert load("glue", "cola").compute(predictions=binary_p, references=binary_r) == pytest.approx(
        {"matthews_correlation": matthews_corrcoef(binary_r, binary_p)})
    for config in ("mrpc", "qqp"):
        assert load("glue", config).compute(predictions=binary_p, references=binary_r) == pytest.approx(
            {"accuracy": accuracy_score(binary_r, binary_p), "f1": f1_score(binary_r, binary_p)})
    for config in ("sst2", "mnli", "mnli_mismatched", "qnli", "rte", "wnli"):
        assert load("glue", config).compute(predictions=PREDICTIONS, references=REFERENCES) == pytest.approx(
            {"accuracy": accuracy_score(REFERENCES, PREDICTIONS)})
    scores = [4.2, 0.5, 3.3, 2.0, 5.0, 1.1]
    gold = [4.0, 1.0, 2.5, 2.6, 4.8, 0.0]
    result = load("glue", "stsb").compute(predictions=scores, references=gold)
    assert result == pytest.approx({"pearson": pearsonr(scores, gold)[0], "spearmanr": spearmanr(scores, gold)[0]},
                                   abs=1e-6)  # the module stores float32, as the Hub's GLUE metric


def test_super_glue_matches_sklearn_and_multirc_by_hand():
    assert load("super_glue", "cb").compute(predictions=PREDICTIONS, references=REFERENCES) == pytest.approx(
        {"accuracy": 8 / 12, "f1": f1_score(REFERENCES, PREDICTIONS, average="macro")})
    for config in ("boolq", "copa", "rte", "wic", "wsc.fixed"):
        assert load("super_glue", config).compute(predictions=[1, 0, 1], references=[1, 1, 1]) == pytest.approx(
            {"accuracy": 2 / 3})
    # question (0, 0): gold 1 0 1, predicted 1 0 0 -> not exact; macro-F1 over its options = (2/3 + 2/3) / 2
    # question (0, 1): gold 0 1, predicted 0 1 -> exact, F1 1;  all options: TP 2, FP 0, FN 1 -> F1a 4/5
    ids = [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 3), (0, 1, 4)]
    predicted = [1, 0, 0, 0, 1]
    predictions = [{"idx": {"paragraph": p, "question": q, "answer": a}, "prediction": y}
                   for (p, q, a), y in zip(ids, predicted)]
    result = load("super_glue", "multirc").compute(predictions=predictions, references=[1, 0, 1, 0, 1])
    assert result == pytest.approx({"exact_match": 0.5, "f1_m": (2 / 3 + 1) / 2, "f1_a": 0.8})


def test_seqeval_ner_matches_seqeval_and_counts_only_exact_entities():
    references = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-ORG", "I-ORG", "I-ORG", "O"], ["O", "B-MISC"]]
    predictions = [["B-PER", "I-PER", "O", "B-ORG", "O"], ["B-ORG", "I-ORG", "O", "O"], ["O", "B-MISC"]]
    result = load("seqeval_ner").compute(predictions=predictions, references=references)
    assert result["overall_precision"] == pytest.approx(seqeval_precision(references, predictions))
    assert result["overall_recall"] == pytest.approx(seqeval_recall(references, predictions))
    assert result["overall_f1"] == pytest.approx(seqeval_f1(references, predictions))
    # by hand: 4 gold entities, 4 predicted; right are PER and MISC only (LOC->ORG wrong type, ORG span cut short)
    assert result["overall_f1"] == pytest.approx(0.5) and result["PER"]["f1"] == 1.0 and result["ORG"]["f1"] == 0.0
    assert result["overall_accuracy"] == pytest.approx(9 / 11)


# The official SQuAD v1.1 evaluation script (evaluate-v1.1.py), its scoring functions as published.
def official_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def official_f1(prediction, ground_truth):
    prediction_tokens = official_normalize_answer(prediction).split()
    ground_truth_tokens = official_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def official_evaluate(answers, predictions):
    exact = f1 = 0
    for qid, truths in answers.items():
        exact += max(float(official_normalize_answer(predictions[qid]) == official_normalize_answer(t)) for t in truths)
        f1 += max(official_f1(predictions[qid], t) for t in truths)
    return {"exact_match": 100.0 * exact / len(answers), "f1": 100.0 * f1 / len(answers)}


def test_squad_matches_the_official_script():
    answers = {"a": ["The Cat!", "a dog"], "b": ["a cat sat down"], "c": ["Denver Broncos"], "d": ["1,000 feet"],
               "e": ["the  end"]}
    predictions = {"a": "cat", "b": "the big cat sat", "c": "Carolina Panthers", "d": "1000 feet", "e": "An end."}
    result = load("squad").compute(
        predictions=[{"id": k, "prediction_text": v} for k, v in predictions.items()],
        references=[{"id": k, "answers": {"text": v, "answer_start": [0] * len(v)}} for k, v in answers.items()])
    assert result == pytest.approx(official_evaluate(answers, predictions))
    # by hand: a exact (case, article, punctuation go), b "big cat sat" vs "cat sat down": F1 2/3, c 0,
    # d exact ("1,000" loses its comma), e exact ("an" and "the" go, spaces collapse)
    assert result["exact_match"] == pytest.approx(60.0)
    assert result["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0 + 1 + 1) / 5)


def test_classification_matches_sklearn():
    result = load("classification", "multiclass").compute(predictions=PREDICTIONS, references=REFERENCES)
    assert result == pytest.approx({"accuracy": 8 / 12, "macro_f1": f1_score(REFERENCES, PREDICTIONS, average="macro"),
                                    "micro_f1": f1_score(REFERENCES, PREDICTIONS, average="micro")})
    binary = load("classification", "binary").compute(predictions=PREDICTIONS[:10], references=REFERENCES[:10])
    assert binary["f1"] == pytest.approx(f1_score(REFERENCES[:10], PREDICTIONS[:10]))


def test_unknown_configs_are_errors():
    with pytest.raises(KeyError, match="GLUE metric config must be one of"):
        load("glue", "sst3")
    with pytest.raises(ValueError, match="Unknown metric module"):
        metric_path("bleu")
