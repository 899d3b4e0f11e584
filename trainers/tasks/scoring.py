"""Scoring a model on a task's scored splits: outputs gathered from every process, then the task's `evaluate` metric.

    scores = score_splits(model, task, data, features, loaders, accelerator)   # {split name: {metric: value}}
"""

import torch
from accelerate.utils import broadcast_object_list

from ...metrics import metric_path
from .features import metric_inputs
from .registry import Task

INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def predict(model, loader, accelerator, kind: str) -> list:
    """One output per feature, in the loader's order, gathered from every process: class logits [labels],
    choice logits, per-token logits [tokens, labels], or (start, end) logits for QA."""
    per_token = kind in ("token_classification", "question_answering")
    outputs = []
    model.eval()
    with torch.no_grad():
        for batch in loader:
            out = model(**{k: v for k, v in batch.items() if k in INPUT_KEYS})
            logits = torch.stack([out.start_logits, out.end_logits], -1) if kind == "question_answering" else out.logits
            logits = logits.float()
            lengths = batch["attention_mask"].sum(-1)
            if per_token:  # processes' batches differ in length: pad before gathering
                logits = accelerator.pad_across_processes(logits, dim=1)
            logits, lengths = accelerator.gather_for_metrics((logits, lengths))
            for row, length in zip(logits.cpu().numpy(), lengths.tolist()):
                if kind == "question_answering":
                    outputs.append((row[:length, 0], row[:length, 1]))
                else:
                    outputs.append(row[:length] if per_token else row)
    model.train()
    return outputs


def score(task: Task, predictions, references) -> dict[str, float]:
    """The task's metric through its local `evaluate` module; flat {name: value}."""
    import evaluate

    module = evaluate.load(metric_path(task.metric), task.metric_config, keep_in_memory=True)
    result = module.compute(predictions=predictions, references=references)
    if task.metric == "seqeval_ner":  # entity-level overall scores; per-type scores stay with the module
        result = {key[len("overall_"):]: value for key, value in result.items() if key.startswith("overall_")}
    return {key: float(value) for key, value in result.items()}


def score_splits(model, task: Task, data, features: dict, loaders: list, accelerator, n_best: int = 20,
                 max_answer_length: int = 30) -> dict[str, dict[str, float]]:
    """Scores of every scored split, computed on the main process and shared with all."""
    scores = {}
    for split, loader in zip(task.splits, loaders):
        outputs = predict(model, loader, accelerator, task.kind)
        if accelerator.is_main_process:
            predictions, references = metric_inputs(task, data[split.name], features[split.name], outputs, n_best,
                                                    max_answer_length)
            scores[split.name] = score(task, predictions, references)
    return broadcast_object_list([scores])[0]
