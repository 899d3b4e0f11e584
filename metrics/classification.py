"""Accuracy and F1 for single-label text classification (the domain tasks).

Always: accuracy, macro_f1 (unweighted mean over the classes present) and micro_f1 (over all examples).
config "binary" adds f1 of the positive class 1 (e.g. overruling). Values are fractions in [0, 1].
"""

import datasets
import evaluate
from sklearn.metrics import accuracy_score, f1_score

CONFIGS = ("default", "binary", "multiclass")


class Classification(evaluate.Metric):
    def _info(self):
        if self.config_name not in CONFIGS:
            raise KeyError(f"classification metric config must be one of {list(CONFIGS)}, got {self.config_name!r}.")
        return evaluate.MetricInfo(
            description="Accuracy, macro-F1 and micro-F1 (plus positive-class F1 for binary tasks).",
            citation="Pedregosa et al. 2011, Scikit-learn: Machine Learning in Python (JMLR).",
            inputs_description="predictions, references: class ids, one per example.",
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        scores = {
            "accuracy": float(accuracy_score(references, predictions)),
            "macro_f1": float(f1_score(references, predictions, average="macro", zero_division=0)),
            "micro_f1": float(f1_score(references, predictions, average="micro", zero_division=0)),
        }
        if self.config_name == "binary":
            scores["f1"] = float(f1_score(references, predictions, zero_division=0))
        return scores
