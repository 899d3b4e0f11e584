"""SQuAD v1.1 exact match and F1, exactly as the official evaluation script (`evaluate-v1.1.py`) defines them.

An answer is normalised (lower case, punctuation removed, the articles a/an/the removed, whitespace
collapsed); exact match and token-overlap F1 take the best score over an example's gold answers; both are
averaged over examples and reported in percent, as the official script prints them.
Predictions: [{"id", "prediction_text"}]; references: [{"id", "answers": {"text": [...], "answer_start": [...]}}].
"""

import re
import string
from collections import Counter

import datasets
import evaluate


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, ground_truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score(prediction: str, ground_truth: str) -> float:
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(ground_truth_tokens)
    return 2 * precision * recall / (precision + recall)


class Squad(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="SQuAD v1.1: exact match and token F1 against the best-matching gold answer, in percent.",
            citation="Rajpurkar et al. 2016, SQuAD: 100,000+ Questions for Machine Comprehension of Text (EMNLP).",
            inputs_description="predictions: [{'id', 'prediction_text'}]; references: [{'id', 'answers'}].",
            features=datasets.Features({
                "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")},
                "references": {
                    "id": datasets.Value("string"),
                    "answers": datasets.Sequence(
                        {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}
                    ),
                },
            }),
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def _compute(self, predictions, references):
        predicted = {p["id"]: p["prediction_text"] for p in predictions}
        missing = [r["id"] for r in references if r["id"] not in predicted]
        if missing:
            raise ValueError(f"{len(missing)} references have no prediction, e.g. id {missing[0]!r}.")
        exact = f1 = 0.0
        for reference in references:
            truths, prediction = reference["answers"]["text"], predicted[reference["id"]]
            exact += max(exact_match_score(prediction, truth) for truth in truths)
            f1 += max(f1_score(prediction, truth) for truth in truths)
        return {"exact_match": 100.0 * exact / len(references), "f1": 100.0 * f1 / len(references)}
