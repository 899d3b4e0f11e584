"""GLUE metrics (Wang et al. 2019), as the GLUE benchmark defines them for each task.

config name -> metrics: cola -> matthews_correlation; sst2, mnli, mnli_matched, mnli_mismatched, qnli,
rte, wnli, hans -> accuracy; mrpc, qqp -> accuracy and f1 (of the positive class 1); stsb -> pearson and
spearmanr. Values are fractions in [0, 1] ([-1, 1] for correlations), as transformers' GLUE examples report.
"""

import datasets
import evaluate
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

ACCURACY_TASKS = ("sst2", "mnli", "mnli_mismatched", "mnli_matched", "qnli", "rte", "wnli", "hans")
CONFIGS = ("cola", "stsb", "mrpc", "qqp", *ACCURACY_TASKS)


class Glue(evaluate.Metric):
    def _info(self):
        if self.config_name not in CONFIGS:
            raise KeyError(f"GLUE metric config must be one of {list(CONFIGS)}, got {self.config_name!r}.")
        value = datasets.Value("float32" if self.config_name == "stsb" else "int64")
        return evaluate.MetricInfo(
            description="GLUE: the official metric of each GLUE task.",
            citation="Wang et al. 2019, GLUE: A Multi-Task Benchmark and Analysis Platform for NLU (ICLR).",
            inputs_description="predictions, references: class ids (a float score for stsb), one per example.",
            features=datasets.Features({"predictions": value, "references": value}),
            reference_urls=["https://gluebenchmark.com/"],
        )

    def _compute(self, predictions, references):
        if self.config_name == "cola":
            return {"matthews_correlation": float(matthews_corrcoef(references, predictions))}
        if self.config_name == "stsb":
            return {"pearson": float(pearsonr(predictions, references)[0]),
                    "spearmanr": float(spearmanr(predictions, references)[0])}
        accuracy = sum(int(p == r) for p, r in zip(predictions, references)) / len(references)
        if self.config_name in ("mrpc", "qqp"):
            return {"accuracy": accuracy, "f1": float(f1_score(references, predictions))}
        return {"accuracy": accuracy}
