"""SuperGLUE metrics (Wang et al. 2019), as the SuperGLUE benchmark defines them (ReCoRD not included).

config name -> metrics: boolq, copa, rte, wic, wsc, wsc.fixed, axg -> accuracy; cb -> accuracy and f1
(macro-averaged over the three classes); multirc -> exact_match (per question: every answer option right),
f1_m (each question's macro-F1 over its options, averaged, as the `super_glue` evaluate metric) and f1_a
(F1 over all answer options); axb -> matthews_correlation.
MultiRC predictions are {"idx": {"paragraph", "question", "answer"}, "prediction": 0|1}; references are 0|1.
"""

from collections import defaultdict

import datasets
import evaluate
from sklearn.metrics import f1_score, matthews_corrcoef

CONFIGS = ("boolq", "cb", "copa", "multirc", "rte", "wic", "wsc", "wsc.fixed", "axb", "axg")


class SuperGlue(evaluate.Metric):
    def _info(self):
        if self.config_name not in CONFIGS:
            raise KeyError(f"SuperGLUE metric config must be one of {list(CONFIGS)}, got {self.config_name!r}.")
        if self.config_name == "multirc":
            index = {"paragraph": datasets.Value("int64"), "question": datasets.Value("int64"),
                     "answer": datasets.Value("int64")}
            predictions = {"idx": index, "prediction": datasets.Value("int64")}
        else:
            predictions = datasets.Value("int64")
        return evaluate.MetricInfo(
            description="SuperGLUE: the official metric of each SuperGLUE task (ReCoRD excluded).",
            citation="Wang et al. 2019, SuperGLUE: A Stickier Benchmark for General-Purpose Language "
                     "Understanding Systems (NeurIPS).",
            inputs_description="predictions: class ids (MultiRC: dicts with idx and prediction); references: ids.",
            features=datasets.Features({"predictions": predictions, "references": datasets.Value("int64")}),
            reference_urls=["https://super.gluebenchmark.com/"],
        )

    def _compute(self, predictions, references):
        if self.config_name == "multirc":
            return multirc_scores(predictions, references)
        if self.config_name == "axb":
            return {"matthews_correlation": float(matthews_corrcoef(references, predictions))}
        accuracy = sum(int(p == r) for p, r in zip(predictions, references)) / len(references)
        if self.config_name == "cb":
            return {"accuracy": accuracy, "f1": float(f1_score(references, predictions, average="macro"))}
        return {"accuracy": accuracy}


def multirc_scores(predictions, references) -> dict:
    by_question = defaultdict(list)
    for prediction, reference in zip(predictions, references):
        key = (prediction["idx"]["paragraph"], prediction["idx"]["question"])
        by_question[key].append((prediction["prediction"], reference))
    exact, f1s = [], []
    for pairs in by_question.values():
        predicted, gold = zip(*pairs)
        exact.append(float(all(p == g for p, g in pairs)))
        f1s.append(float(f1_score(gold, predicted, average="macro", zero_division=0)))
    return {
        "exact_match": sum(exact) / len(exact),
        "f1_m": sum(f1s) / len(f1s),
        "f1_a": float(f1_score(references, [p["prediction"] for p in predictions])),
    }
