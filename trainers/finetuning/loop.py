"""Fine-tune any transformers encoder on one registered task, fully or through a PEFT adapter, and score it.

    config = finetune_config(["--model", "runs/tiny/final", "--task", "sst2", "--output-dir", "runs/sst2"])
    results = finetune(config)        # what briskbert-finetune runs; the evaluation harness calls it per task and seed

Per-task defaults (learning rate, epochs, batch, max length, warmup) come from the task's registry entry
(hub_configs/tasks/<task>.yaml, its `finetune:` section); `--config other.yaml` replaces them, and every field is also
a command-line flag that wins over both. The model is scored on the task's validation split(s) every `eval_every`
steps (or every epoch); the best weights by the task's main metric are kept (early stopping after
`early_stopping_patience` evaluations without improvement) and written to <output_dir>/final/ with the tokenizer: a
full model, a PEFT adapter alone, or with --merge the adapter merged into a plain model that loads without PEFT.
<output_dir> also gets results.json (scores, steps, wall-clock, parameter counts, hyperparameters), metrics.jsonl and
TensorBoard logs.
"""

import argparse
import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import torch
import transformers
import yaml
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

import briskbert  # noqa: F401  (registers BriskBERT with the Auto classes, for folders saved without code)

from ..config import check_fields, load_recipe, parse_config, raise_problems
from ..file_integrity import feed
from ..hub.upload import push_folder
from ..inference.quantize import quantize
from ..metrics_log import MetricsLog
from ..resources import recipe_path
from ..tasks.features import LengthGroupedBatches, build_features, collate, feature_length
from ..tasks.registry import Task, get_task, load_task_data, local_file
from ..tasks.scoring import score_splits
from ..training import check_precision, make_accelerator, parameter_groups, resolve_precision
from .adapters import add_adapter, describe


@dataclass
class FinetuneConfig:
    model: str = ""  # a folder or hub id; a PEFT adapter folder loads its base model under it
    task: str = ""  # a task of the registry, hub_configs/tasks/ (sst2, mnli, conll2003, squad, ...)
    output_dir: str = "outputs/finetune"
    data_dir: str | None = None  # a folder laid out like the repo's data/; None: the task's Hub dataset
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
    int8: bool = False  # with max_steps 0: score the model quantized to int8 for the CPU (briskbert.quantize)
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

    def __post_init__(self):
        problems = check_precision(self.mixed_precision)
        if not self.model:
            problems.append("--model is required (a folder or hub id)")
        if not self.task:
            problems.append("--task is required (e.g. sst2, mrpc, conll2003, squad)")
        if self.peft not in (None, "lora"):
            problems.append(f"--peft must be 'lora' (other methods: --peft-config file.json), got {self.peft!r}")
        if self.merge and not (self.peft or self.peft_config):
            problems.append("--merge merges an adapter: add --peft lora or --peft-config")
        for name in ("batch_size", "eval_batch_size", "gradient_accumulation_steps", "max_seq_length", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        raise_problems("fine-tuning", problems)
        get_task(self.task)  # an unknown task stops here, listing the registry's

    @classmethod
    def for_task(cls, task: str, defaults: dict | None = None, **overrides) -> "FinetuneConfig":
        """The task's fine-tuning protocol (its YAML's `finetune:` section, or `defaults` in its place), then
        `overrides`: what the command line gives, without a command line."""
        defaults = get_task(task).finetune if defaults is None else defaults
        return cls(task=task, **{**check_fields(defaults, cls, f"The fine-tuning defaults of task {task!r}"),
                                 **check_fields(overrides, cls, "FinetuneConfig.for_task")})


def finetune_defaults(task: str, config: str | None) -> tuple[dict | None, str]:
    """The defaults a run's flags go on top of, and where they come from: `--config`'s recipe (a task file's
    `finetune:` section, as in `--config tasks/mrpc`: another task's protocol; or a plain recipe of fields), else the
    task's own `finetune:` section."""
    if config is not None:
        path = recipe_path(config)
        recipe = yaml.safe_load(path.read_text())
        if isinstance(recipe, dict) and "kind" in recipe and "finetune" in recipe:  # a task file
            return recipe["finetune"], f"The `finetune:` section of {path}"
        return load_recipe(path, FinetuneConfig), f"Recipe {path}"
    if task:
        return get_task(task).finetune, f"The fine-tuning defaults of task {task!r}"
    return None, ""


def finetune_config(argv: list[str] | None = None) -> FinetuneConfig:
    """Dataclass defaults < the task's `finetune:` defaults (or, replacing them, --config) < command line. A --config
    that is a task file (`--config tasks/mrpc`: another task's defaults) gives its `finetune:` section."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default="")
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    defaults, defaults_from = finetune_defaults(known.task, known.config)
    if known.config is not None:  # read above: its fields are the defaults
        argv = without_option(argv, "--config")
    return parse_config(FinetuneConfig, argv, defaults=defaults, defaults_from=defaults_from)


def without_option(argv: list[str], option: str) -> list[str]:
    """`argv` without `option` and its value (`--option value` or `--option=value`)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(f"{option}="):
            kept.append(arg)
    return kept


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
    auto_class = getattr(transformers, task.head.auto_class)
    model = auto_class.from_pretrained(base, trust_remote_code=True, ignore_mismatched_sizes=True, **head)
    tokenizer_source = name_or_path if Path(name_or_path, "tokenizer_config.json").is_file() or not adapter else base
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, trust_remote_code=True)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, name_or_path, is_trainable=True)
    return tokenizer, model


@dataclass
class Evaluations:
    """Every evaluation's scores, and a CPU copy of the trainable weights at the best one by the main metric."""

    task: Task
    patience: int  # evaluations without a better main metric before stopping; 0: never stop early
    history: list[dict] = field(default_factory=list)
    best: float | None = None
    best_step: int = 0
    best_scores: dict | None = None
    best_weights: dict | None = None
    since_best: int = 0
    seconds: float = 0.0

    def add(self, step: int, scores: dict, model) -> bool:
        """Record one evaluation; True when early stopping says stop."""
        main = scores[self.task.name][self.task.main_metric]
        self.history.append({"step": step, **scores[self.task.name]})
        if self.best is None or main > self.best:
            self.best, self.best_step, self.best_scores, self.since_best = main, step, scores, 0
            self.best_weights = {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters()
                                 if p.requires_grad}
        else:
            self.since_best += 1
        return 0 < self.patience <= self.since_best

    def restore_best(self, model) -> None:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name in self.best_weights:
                    parameter.copy_(self.best_weights[name].to(parameter.device))


def finetune(config: FinetuneConfig) -> dict:
    task = get_task(config.task)
    output = Path(config.output_dir)
    precision = resolve_precision(config.mixed_precision)
    accelerator = make_accelerator(output, precision, config.gradient_accumulation_steps)
    set_seed(config.seed)

    # ---- data, model, features
    data = load_task_data(task, config.data_dir, config.max_train_samples or None, config.max_eval_samples or None)
    tokenizer, model = load_for_task(config.model, task)
    if config.int8:
        if config.max_steps != 0 or accelerator.device.type != "cpu" or config.peft or config.peft_config:
            raise SystemExit("--int8 scores a trained model on the CPU: pass --max-steps 0, no --peft, no GPU "
                             "(merge an adapter first: briskbert-finetune ... --merge).")
        model = quantize(model, tokenizer=tokenizer)
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
    train_loader, eval_loaders = data_loaders(train_features, eval_features, tokenizer.pad_token_id, config)

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
    score = partial(score_splits, task=task, data=data, features=eval_features, loaders=eval_loaders,
                    accelerator=accelerator, n_best=config.n_best, max_answer_length=config.max_answer_length)

    # ---- the loop: evaluate every eval_every steps or every epoch, keep the best weights, stop early if asked
    evaluations = Evaluations(task, config.early_stopping_patience)
    progress = tqdm(total=total_steps, disable=not accelerator.is_local_main_process, desc=f"fine-tuning {task.name}")
    step, epochs, stop, running_losses = 0, 0, total_steps == 0, []
    started = time.perf_counter()
    model.train()
    while not stop:
        evaluated_at = None
        for losses in optimizer_steps(model, train_loader, optimizer, scheduler, accelerator, config.max_grad_norm):
            step += 1
            progress.update(1)
            running_losses += losses
            if step % config.log_every == 0:
                mean_loss = accelerator.reduce(torch.stack(running_losses).mean(), "mean").item()
                log.log({"step": step, "loss": mean_loss, "lr": scheduler.get_last_lr()[0]}, progress.write)
                running_losses = []
            last = step >= total_steps
            if (config.eval_every and step % config.eval_every == 0) or last:
                stop = evaluate_at(step, model, unwrapped, score, evaluations, log, progress.write) or last
                evaluated_at = step
                if stop:
                    break
        epochs += 1
        if not stop and not config.eval_every and evaluated_at != step:  # an epoch ended between evaluations
            stop = evaluate_at(step, model, unwrapped, score, evaluations, log, progress.write)
    train_seconds = time.perf_counter() - started - evaluations.seconds
    progress.close()

    # ---- the best weights back in place, and saved
    if evaluations.best_weights is not None:
        evaluations.restore_best(unwrapped)
        final_scores = evaluations.best_scores
    else:  # max_steps 0: score the model as loaded
        start = time.perf_counter()
        final_scores = score(model)
        evaluations.seconds = time.perf_counter() - start
    final = output / "final"
    if total_steps > 0 and accelerator.is_main_process:
        save_final(unwrapped, tokenizer, output, merge=is_peft and config.merge)
    results = {
        "model": config.model,
        "revision": revision,
        "task": task.name,
        "task_type": task.kind,
        "dataset": task.hub_id,
        "dataset_config": task.hub_config,
        "data_dir": config.data_dir,
        "seed": config.seed,
        "int8": config.int8,
        "main_metric": task.main_metric,
        "eval": {split.name: {"split": split.hub_split if config.data_dir is None else split.file,
                              "source": data_source(task, split, config.data_dir),
                              "examples": len(data[split.name]), "metrics": final_scores[split.name]}
                 for split in task.splits},
        "train_examples": len(data["train"]),
        "steps": step,
        "epochs_started": epochs,
        "best_step": evaluations.best_step,
        "stopped_early": 0 < step < total_steps,
        "train_seconds": round(train_seconds if total_steps > 0 else 0.0, 2),
        "eval_seconds": round(evaluations.seconds, 2),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "peft": describe(unwrapped) if is_peft else None,
        "merged": bool(is_peft and config.merge and total_steps > 0),
        "final": str(final) if total_steps > 0 else None,
        "mixed_precision": precision,
        "num_processes": accelerator.num_processes,
        "device": accelerator.device.type,
        "hyperparameters": hyperparameters(config, total_steps),
        "history": evaluations.history,
        "config": json.loads(json.dumps(asdict(config))),
        "model_fingerprint": model_fingerprint(config.model),
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


def data_loaders(train_features: list, eval_features: dict, pad_token_id: int, config: FinetuneConfig):
    """(shuffled training loader, one loader per scored split); `group_by_length` batches similar lengths."""
    collate_fn = partial(collate, pad_token_id=pad_token_id)
    if config.group_by_length:
        batches = LengthGroupedBatches([feature_length(f) for f in train_features], config.batch_size, config.seed)
        train_loader = DataLoader(train_features, batch_sampler=batches, collate_fn=collate_fn)
    else:
        train_loader = DataLoader(train_features, batch_size=config.batch_size, shuffle=True, collate_fn=collate_fn,
                                  generator=torch.Generator().manual_seed(config.seed))
    eval_loaders = [DataLoader(f, batch_size=config.eval_batch_size, collate_fn=collate_fn)
                    for f in eval_features.values()]
    return train_loader, eval_loaders


def optimizer_steps(model, loader, optimizer, scheduler, accelerator, max_grad_norm: float):
    """One epoch; yields after each optimizer step with the losses of its micro-batches (accumulation is
    accelerate's: a step is taken where `sync_gradients`)."""
    losses = []
    for batch in loader:
        with accelerator.accumulate(model):
            loss = model(**batch).loss
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        if accelerator.sync_gradients:
            scheduler.step()
            yield losses
            losses = []


def evaluate_at(step: int, model, unwrapped, score, evaluations: Evaluations, log: MetricsLog, console) -> bool:
    """Score the model now, log it, keep the weights if they are the best; True when early stopping says stop."""
    start = time.perf_counter()
    scores = score(model)
    stop = evaluations.add(step, scores, unwrapped)
    log.log({"step": step, **{f"eval_{k}": v for k, v in scores[evaluations.task.name].items()}}, console)
    evaluations.seconds += time.perf_counter() - start
    return stop


def save_final(model, tokenizer, output: Path, merge: bool) -> None:
    """final/: the model, or a PEFT adapter alone (with the trained head); with `merge` the adapter merged into a
    plain model, the adapter itself kept in adapter/."""
    if merge:
        model.save_pretrained(output / "adapter")
        tokenizer.save_pretrained(output / "adapter")
        model.merge_and_unload().save_pretrained(output / "final")
    else:
        model.save_pretrained(output / "final")
    tokenizer.save_pretrained(output / "final")


def model_fingerprint(name_or_path: str) -> str | None:
    """A hash of a local model folder's config and weights (None for a hub id): which weights a result came from,
    whatever the folder is called."""
    folder = Path(name_or_path)
    files = sorted(path for pattern in ("*.json", "*.safetensors", "*.bin") for path in folder.glob(pattern)) \
        if folder.is_dir() else []
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        feed(digest, path)
    return digest.hexdigest()


def finished_run(config: FinetuneConfig) -> dict | None:
    """The results of a run already finished in `config.output_dir` with these settings and the same model weights,
    else None: what lets an interrupted evaluation go on from where it stopped."""
    path = Path(config.output_dir) / "results.json"
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text())
    except ValueError:  # torn by a kill mid-write: run again
        return None
    fingerprint = model_fingerprint(config.model)
    # the weights, not the folder's name, say which model it was: a moved or copied folder is the same model
    ignored = {"model", "output_dir"} if fingerprint is not None else {"output_dir"}
    settings = {key: value for key, value in json.loads(json.dumps(asdict(config))).items() if key not in ignored}
    earlier = {key: value for key, value in (results.get("config") or {}).items() if key not in ignored}
    same = earlier == settings and results.get("model_fingerprint") == fingerprint
    return results if same else None


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
