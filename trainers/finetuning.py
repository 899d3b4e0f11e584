"""Fine-tune any transformers encoder on one registered task, fully or through a PEFT adapter, and score it.

    config = finetune_config(["--model", "runs/tiny/final", "--task", "sst2", "--output-dir", "runs/sst2"])
    results = finetune(config)        # what scripts/finetune.py runs; scripts/evaluate.py calls it per task and seed

Per-task defaults (learning rate, epochs, batch, max length, warmup) come from hub_configs/tasks/<task>.yaml;
`--config other.yaml` replaces that file, and every field is also a command-line flag that wins over both.
The model is scored on the task's validation split(s) every `eval_every` steps (or every epoch); the best
weights by the task's main metric are kept (early stopping after `early_stopping_patience` evaluations
without improvement) and written to <output_dir>/final/ with the tokenizer: a full model, a PEFT adapter
alone, or with --merge the adapter merged into a plain model that loads without PEFT. <output_dir> also
gets results.json (scores, steps, wall-clock, parameter counts, hyperparameters), metrics.jsonl and
TensorBoard logs.
"""

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    get_linear_schedule_with_warmup,
)

import briskbert  # noqa: F401  (registers BriskBERT with the Auto classes, for folders saved without code)

from .adapters import add_adapter, describe
from .config import parse_config
from .features import LengthGroupedBatches, build_features, collate, feature_length, metric_inputs
from .hub import push_folder
from .metrics_log import MetricsLog
from .tasks import Task, get_task, load_task_data, local_file

TASK_CONFIGS = Path(__file__).resolve().parents[1] / "hub_configs" / "tasks"
AUTO_CLASSES = {
    "classification": AutoModelForSequenceClassification,
    "regression": AutoModelForSequenceClassification,
    "multiple_choice": AutoModelForMultipleChoice,
    "token_classification": AutoModelForTokenClassification,
    "question_answering": AutoModelForQuestionAnswering,
}
INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
PRECISIONS = ("auto", "no", "bf16", "fp16")


@dataclass
class FinetuneConfig:
    model: str = ""  # a folder or hub id; a PEFT adapter folder loads its base model under it
    task: str = ""  # a name from trainers/tasks.py (sst2, mnli, conll2003, squad, ...)
    output_dir: str = "outputs/finetune"
    data_dir: str | None = None  # a folder laid out like ../shared/data; None: the task's Hub dataset
    # adapters
    peft: str | None = None  # "lora": LoRA on the model's default targets, head trained in full
    peft_config: str | None = None  # any PEFT method: a config JSON (peft_type, ...)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    merge: bool = False  # write final/ as the adapter merged into a plain model (the adapter goes to adapter/)
    # optimisation
    learning_rate: float = 2e-5
    num_train_epochs: float = 3.0
    max_steps: int = -1  # > 0: this many optimizer steps instead of epochs; 0: only score the model as loaded
    batch_size: int = 32  # examples per process per micro-batch
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    group_by_length: bool = False  # batches of similar lengths: less padding (transformers' Trainer option)
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_seq_length: int = 128
    doc_stride: int = 128  # QA: overlap of the context windows
    max_answer_length: int = 30  # QA: longest span, in tokens
    n_best: int = 20  # QA: start and end candidates per window
    # evaluation, early stopping, data caps
    eval_every: int = 0  # optimizer steps between evaluations; 0: at the end of every epoch
    early_stopping_patience: int = 0  # stop after this many evaluations without a better main metric; 0: never
    max_train_samples: int = 0  # 0: all; else a fixed random subset (the same for every seed)
    max_eval_samples: int = 0  # 0: all; else the first rows of each scored split
    seed: int = 42
    mixed_precision: str = "auto"  # auto: bf16 on a GPU that has it, else fp32 | no | bf16 | fp16
    log_every: int = 50
    push_to_hub: str | None = None  # org/name: publish final/ (model or adapter) with a generated card at the end
    push_base_model: str | None = None  # the base model's hub id for the card, when --model was a local folder


def finetune_config(argv: list[str] | None = None) -> FinetuneConfig:
    """Dataclass defaults < hub_configs/tasks/<task>.yaml (or --config) < command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default="")
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.config is None and known.task:
        recipe = TASK_CONFIGS / f"{get_task(known.task).name}.yaml"
        if recipe.is_file():
            argv = ["--config", str(recipe), *argv]
    config = parse_config(FinetuneConfig, argv)
    problems = []
    if not config.model:
        problems.append("--model is required (a folder or hub id)")
    if not config.task:
        problems.append("--task is required (e.g. sst2, mrpc, conll2003, squad)")
    if config.peft not in (None, "lora"):
        problems.append(f"--peft must be 'lora' (other methods: --peft-config file.json), got {config.peft!r}")
    if config.merge and not (config.peft or config.peft_config):
        problems.append("--merge merges an adapter: add --peft lora or --peft-config")
    if config.mixed_precision not in PRECISIONS:
        problems.append(f"mixed_precision must be one of {PRECISIONS}, got {config.mixed_precision!r}")
    for name in ("batch_size", "eval_batch_size", "gradient_accumulation_steps", "max_seq_length", "log_every"):
        if getattr(config, name) < 1:
            problems.append(f"{name} must be at least 1, got {getattr(config, name)}")
    if problems:
        raise SystemExit("Invalid fine-tuning config:\n  - " + "\n  - ".join(problems))
    get_task(config.task)
    return config


def load_for_task(name_or_path: str, task: Task):
    """(tokenizer, model with the task's head). An adapter folder (adapter_config.json) loads its base model with
    the task head, then the adapter on top, trainable."""
    adapter = Path(name_or_path, "adapter_config.json").is_file()
    base = json.loads(Path(name_or_path, "adapter_config.json").read_text())["base_model_name_or_path"] \
        if adapter else name_or_path
    head = {}
    if task.kind in ("classification", "regression", "token_classification"):
        labels = task.labels or ("score",)
        head = dict(num_labels=task.num_labels, id2label=dict(enumerate(labels)),
                    label2id={name: i for i, name in enumerate(labels)})
    if task.kind in ("classification", "regression"):
        head["problem_type"] = "regression" if task.kind == "regression" else "single_label_classification"
    # a head of another shape (e.g. MNLI's 3 classes under RTE's 2) is re-initialised, not an error
    model = AUTO_CLASSES[task.kind].from_pretrained(base, trust_remote_code=True, ignore_mismatched_sizes=True,
                                                    **head)
    tokenizer_source = name_or_path if Path(name_or_path, "tokenizer_config.json").is_file() or not adapter else base
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, trust_remote_code=True)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, name_or_path, is_trainable=True)
    return tokenizer, model


def parameter_groups(model, weight_decay: float) -> list[dict]:
    """Decay matrices only; biases and LayerNorm weights (the 1-D parameters) are left alone, as BERT does."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]


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

    from briskbert.metrics import metric_path

    module = evaluate.load(metric_path(task.metric), task.metric_config, keep_in_memory=True)
    result = module.compute(predictions=predictions, references=references)
    if task.metric == "seqeval_ner":  # entity-level overall scores; per-type scores stay with the module
        result = {key[len("overall_"):]: value for key, value in result.items() if key.startswith("overall_")}
    return {key: float(value) for key, value in result.items()}


def finetune(config: FinetuneConfig) -> dict:
    task = get_task(config.task)
    output = Path(config.output_dir)
    precision = config.mixed_precision
    if precision == "auto":  # bf16 autocast pays on GPUs; on CPUs without bf16 matmul units it is slower
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    accelerator = Accelerator(cpu=torch.accelerator.current_accelerator() is None, mixed_precision=precision,
                              gradient_accumulation_steps=config.gradient_accumulation_steps,
                              log_with="tensorboard", project_dir=str(output))
    set_seed(config.seed)
    torch.set_flush_denormal(True)  # on CPU, denormal values in small fresh weights slow fp32 math many-fold

    # ---- data, model, features
    data = load_task_data(task, config.data_dir, config.max_train_samples or None, config.max_eval_samples or None)
    tokenizer, model = load_for_task(config.model, task)
    revision = getattr(model.config, "_commit_hash", None)
    if config.peft or config.peft_config:
        if hasattr(model, "peft_config"):
            raise SystemExit(f"{config.model} is already a PEFT adapter: drop --peft/--peft-config to go on training it.")
        model = add_adapter(model, config.peft, config.peft_config, config.lora_r, config.lora_alpha,
                            config.lora_dropout)
    is_peft = hasattr(model, "peft_config")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    accelerator.print(f"{task.name} ({task.kind}): {', '.join(f'{k} {len(v)}' for k, v in data.items())} rows; "
                      f"{trainable:,} of {total:,} parameters trained")
    features = partial(build_features, task, tokenizer, max_length=config.max_seq_length, doc_stride=config.doc_stride)
    train_features = features(data["train"])
    eval_features = {split.name: features(data[split.name]) for split in task.splits}
    collate_fn = partial(collate, pad_token_id=tokenizer.pad_token_id)
    if config.group_by_length:
        batches = LengthGroupedBatches([feature_length(f) for f in train_features], config.batch_size, config.seed)
        train_loader = DataLoader(train_features, batch_sampler=batches, collate_fn=collate_fn)
    else:
        train_loader = DataLoader(train_features, batch_size=config.batch_size, shuffle=True, collate_fn=collate_fn,
                                  generator=torch.Generator().manual_seed(config.seed))
    eval_loaders = [DataLoader(f, batch_size=config.eval_batch_size, collate_fn=collate_fn)
                    for f in eval_features.values()]

    # ---- optimisation: AdamW, linear warmup then linear decay to zero
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.learning_rate)
    model, optimizer, train_loader, *eval_loaders = accelerator.prepare(model, optimizer, train_loader, *eval_loaders)
    steps_per_epoch = max(1, math.ceil(len(train_loader) / config.gradient_accumulation_steps))
    total_steps = config.max_steps if config.max_steps >= 0 else math.ceil(config.num_train_epochs * steps_per_epoch)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * total_steps),
                                                max(total_steps, 1))
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
    accelerator.init_trackers("finetune", config={k: str(v) for k, v in asdict(config).items()})
    log = MetricsLog(accelerator, output / "metrics.jsonl")

    def evaluate_model() -> dict[str, dict[str, float]]:
        """Scores of every scored split; computed on the main process, shared with all."""
        scores = {}
        for split, loader in zip(task.splits, eval_loaders):
            outputs = predict(model, loader, accelerator, task.kind)
            if accelerator.is_main_process:
                predictions, references = metric_inputs(task, data[split.name], eval_features[split.name], outputs,
                                                        config.n_best, config.max_answer_length)
                scores[split.name] = score(task, predictions, references)
        return broadcast_object_list([scores])[0]

    # ---- the loop: evaluate every eval_every steps or epoch, keep the best weights, stop early if asked
    state = {"step": 0, "epoch": 0, "best": None, "best_step": 0, "stale": 0, "train_seconds": 0.0, "history": []}
    best_weights = None

    def evaluation_point():
        nonlocal best_weights
        start = time.perf_counter()
        scores = evaluate_model()
        main = scores[task.name][task.main_metric]
        state["history"].append({"step": state["step"], **scores[task.name]})
        log.log({"step": state["step"], **{f"eval_{k}": v for k, v in scores[task.name].items()}}, progress.write)
        if state["best"] is None or main > state["best"]:
            state.update(best=main, best_step=state["step"], stale=0, best_scores=scores)
            best_weights = {n: p.detach().to("cpu", copy=True) for n, p in unwrapped.named_parameters()
                            if p.requires_grad}
        else:
            state["stale"] += 1
        state["eval_seconds"] = state.get("eval_seconds", 0.0) + time.perf_counter() - start
        return 0 < config.early_stopping_patience <= state["stale"]

    model.train()
    progress = tqdm(total=total_steps, disable=not accelerator.is_local_main_process, desc=f"fine-tuning {task.name}")
    running_loss, stop = [], total_steps == 0
    tick = time.perf_counter()
    while not stop:
        evaluated_at = -1
        for batch in train_loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            running_loss.append(loss.detach())
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            state["step"] += 1
            progress.update(1)
            if state["step"] % config.log_every == 0:
                mean_loss = accelerator.reduce(torch.stack(running_loss).mean(), "mean").item()
                log.log({"step": state["step"], "loss": mean_loss, "lr": scheduler.get_last_lr()[0]}, progress.write)
                running_loss = []
            last = state["step"] >= total_steps
            if (config.eval_every and state["step"] % config.eval_every == 0) or last:
                state["train_seconds"] += time.perf_counter() - tick
                stop = evaluation_point() or last
                evaluated_at = state["step"]
                tick = time.perf_counter()
                if stop:
                    break
        state["epoch"] += 1
        if not stop and not config.eval_every and evaluated_at != state["step"]:
            state["train_seconds"] += time.perf_counter() - tick
            stop = evaluation_point()
            tick = time.perf_counter()
    progress.close()

    # ---- the best weights back in place, and saved
    if best_weights is not None:
        with torch.no_grad():
            for name, parameter in unwrapped.named_parameters():
                if name in best_weights:
                    parameter.copy_(best_weights[name].to(parameter.device))
        final_scores = state["best_scores"]
    else:  # max_steps 0: score the model as loaded
        start = time.perf_counter()
        final_scores = evaluate_model()
        state["eval_seconds"] = time.perf_counter() - start
    peft_info = describe(unwrapped) if is_peft else None
    final = output / "final"
    if total_steps > 0 and accelerator.is_main_process:
        if is_peft and config.merge:
            unwrapped.save_pretrained(output / "adapter")
            tokenizer.save_pretrained(output / "adapter")
            unwrapped.merge_and_unload().save_pretrained(final)
        else:
            unwrapped.save_pretrained(final)  # PEFT: the adapter (and the trained head) alone
        tokenizer.save_pretrained(final)
    results = {
        "model": config.model,
        "revision": revision,
        "task": task.name,
        "task_type": task.kind,
        "dataset": task.hub_id,
        "dataset_config": task.hub_config,
        "data_dir": config.data_dir,
        "seed": config.seed,
        "main_metric": task.main_metric,
        "eval": {split.name: {"split": split.hub_split if config.data_dir is None else split.file,
                              "source": data_source(task, split, config.data_dir),
                              "examples": len(data[split.name]), "metrics": final_scores[split.name]}
                 for split in task.splits},
        "train_examples": len(data["train"]),
        "steps": state["step"],
        "epochs_started": state["epoch"],
        "best_step": state["best_step"],
        "stopped_early": 0 < state["step"] < total_steps,
        "train_seconds": round(state["train_seconds"], 2),
        "eval_seconds": round(state.get("eval_seconds", 0.0), 2),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "peft": peft_info,
        "merged": bool(is_peft and config.merge and total_steps > 0),
        "final": str(final) if total_steps > 0 else None,
        "mixed_precision": precision,
        "num_processes": accelerator.num_processes,
        "device": accelerator.device.type,
        "hyperparameters": hyperparameters(config, total_steps),
        "history": state["history"],
    }
    if accelerator.is_main_process:
        (output / "results.json").write_text(json.dumps(results, indent=2))
        if config.push_to_hub and total_steps > 0:  # after results.json: the card is rendered from it
            push_folder(final, config.push_to_hub, base_model=config.push_base_model, echo=accelerator.print)
        accelerator.print(json.dumps({"task": task.name, **{k: v["metrics"] for k, v in results["eval"].items()},
                                      "train_seconds": results["train_seconds"]}, indent=2))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    accelerator.free_memory()
    return results


def data_source(task: Task, split, data_dir) -> str:
    """Where a scored split came from: the local file, or hub id:config:split."""
    if data_dir is not None:
        return str(local_file(data_dir, task, split.file))
    return f"{task.hub_id}:{task.hub_config or 'default'}:{split.hub_split}"


def hyperparameters(config: FinetuneConfig, total_steps: int) -> dict:
    keys = ("learning_rate", "num_train_epochs", "max_steps", "batch_size", "gradient_accumulation_steps",
            "group_by_length", "warmup_ratio", "weight_decay", "max_grad_norm", "max_seq_length", "eval_every",
            "early_stopping_patience", "max_train_samples", "peft", "peft_config", "lora_r", "lora_alpha",
            "lora_dropout")
    values = {key: getattr(config, key) for key in keys}
    if config.peft is None and config.peft_config is None:
        for key in ("peft", "peft_config", "lora_r", "lora_alpha", "lora_dropout"):
            values.pop(key)
    values["total_steps"] = total_steps
    return values
