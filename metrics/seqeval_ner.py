"""Entity-level precision, recall and F1 for sequence labelling (CoNLL-2003 style), through seqeval.

An entity counts as found only when its type and its exact span match (seqeval's default mode, the
conlleval definition). Returns overall_precision / overall_recall / overall_f1 / overall_accuracy (token
accuracy) and, per entity type, {"precision", "recall", "f1", "number"}, as the `seqeval` evaluate metric.
"""

import datasets
import evaluate
from seqeval.metrics import accuracy_score, classification_report


class SeqevalNer(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="seqeval: entity-level P/R/F1 for IOB-tagged sequences (conlleval definition).",
            citation="Nakayama 2018, seqeval: A Python framework for sequence labeling evaluation; "
                     "Tjong Kim Sang & De Meulder 2003.",
            inputs_description="predictions, references: one list of tag strings (e.g. B-PER) per sentence.",
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("string")),
                "references": datasets.Sequence(datasets.Value("string")),
            }),
            reference_urls=["https://github.com/chakki-works/seqeval"],
        )

    def _compute(self, predictions, references, scheme=None, mode=None, zero_division=0):
        kwargs = {"scheme": None if scheme is None else _scheme(scheme), "mode": mode}
        report = classification_report(references, predictions, output_dict=True, zero_division=zero_division,
                                       suffix=False, **kwargs)
        report.pop("macro avg"), report.pop("weighted avg")
        overall = report.pop("micro avg")
        scores = {name: {"precision": float(value["precision"]), "recall": float(value["recall"]),
                         "f1": float(value["f1-score"]), "number": int(value["support"])}
                  for name, value in report.items()}
        scores.update(overall_precision=float(overall["precision"]), overall_recall=float(overall["recall"]),
                      overall_f1=float(overall["f1-score"]),
                      overall_accuracy=float(accuracy_score(references, predictions)))
        return scores


def _scheme(name: str):
    import seqeval.scheme

    return getattr(seqeval.scheme, name)
