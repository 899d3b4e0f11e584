"""Pretrain BriskBERT (or the HF-BERT baseline) with masked language modelling; what `briskbert-pretrain` runs.

    config = parse_config(PretrainConfig, ["--config", "tiny-cpu", "--output-dir", "runs/tiny"])
    summary = pretrain(config)

Writes <output_dir>/checkpoints/ (complete or absent, see checkpointing.py), final/ (save_pretrained with code and
tokenizer), metrics.jsonl, summary.json, config.json and TensorBoard logs. `resume=True` continues from the
latest complete checkpoint and reads exactly the rows and masks the uninterrupted run would have, on this number of
processes or another (the global batch is kept; see data/sampling.py); SIGTERM saves a checkpoint first and exits 143.
"""

import json
import math
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from datasets.distributed import split_dataset_by_node
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ...modeling import PRESETS
from ..config import raise_problems
from ..data.corpus import load_sources, row_lengths, tokenize_and_pack
from ..data.masking import MLMMasking
from ..data.packing import block_diagonal_inputs, collate_rows, packing_efficiency
from ..data.prepared import load_prepared, prepared_folder
from ..data.sampling import GlobalOrderBatchSampler
from ..hub.upload import push_folder
from ..measuring import matmul_peak, peak_resident_mb, seconds_since_process_start, segment_lengths, step_flops
from ..metrics_log import MetricsLog
from ..output_lock import OutputLock
from ..resources import data_path
from ..training import check_precision, make_accelerator, parameter_groups, resolve_precision, savable_model
from .checkpointing import load_latest_checkpoint, save_checkpoint
from .models import MODEL_TYPES, build_tokenizer_and_model, head_parameter_names


@dataclass
class PretrainConfig:
    # model
    model_type: str = "briskbert"  # "bert": transformers' BertForMaskedLM of the same preset, as a baseline
    preset: str = "tiny"
    attn_implementation: str = "sdpa"
    hidden_dropout_prob: float = 0.1
    attention_gate: bool = False  # gated attention against int8-hostile outliers (BriskBertConfig.attention_gate)
    init_from: str | None = None  # a BriskBERT checkpoint (folder or hub id) to continue pretraining
    # tokenizer
    tokenizer: str | None = None  # a folder or hub id; None with init_from: the checkpoint's own tokenizer
    extend_tokenizer_tokens: int = 0  # add this many of the corpus's most used unseen word pieces
    # data
    train_data: list[str] = field(default_factory=lambda: ["data/corpus/en"])  # files, folders or a hub id
    hub_config: str | None = None
    text_column: str = "text"
    streaming: bool = False
    max_seq_length: int = 128
    eval_rows: int = 64  # packed rows held out for the evaluation loss
    # masking
    mlm_probability: float = 0.30
    eval_mlm_probability: float = 0.15  # fixed, so eval curves of different recipes compare
    whole_word_masking: bool = False
    random_replacement: bool = False  # BERT's 80/10/10; MosaicBERT masks every chosen token
    # optimisation (MosaicBERT-base defaults)
    learning_rate: float = 5e-4
    weight_decay: float = 1e-5
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-6
    warmup_ratio: float = 0.06
    final_lr_ratio: float = 0.02
    # continuing a checkpoint that has no MLM head (a sentence encoder): its fresh head's first gradients would
    # flow into the pretrained encoder, so first train the head alone, the encoder and embeddings frozen (and not
    # back-propagated through), at head_learning_rate; the remaining steps train everything at learning_rate
    head_warmup_steps: int = 0
    head_learning_rate: float = 1e-3
    max_grad_norm: float = 1.0
    micro_batch_size: int = 32  # rows per process per forward
    gradient_accumulation_steps: int = 1
    max_steps: int = 1000
    max_minutes: float = 0.0  # >0: also stop (and save) once training has run this long, for equal-time runs
    mixed_precision: str = "auto"  # auto (bf16 on a GPU that has it, else fp32) | no | bf16 | fp16
    seed: int = 17
    dataloader_workers: int = 0
    # checkpoints and logs
    output_dir: str = "outputs/pretrain"
    save_every: int = 500
    keep_checkpoints: int = 2
    resume: bool = False
    log_every: int = 10
    eval_every: int = 100
    peak_tflops: float = 0.0  # 0: measure this device's matmul peak for MFU
    push_to_hub: str | None = None  # org/name: publish final/ with a generated model card when training ends

    def __post_init__(self):
        check(self)


def check(config: PretrainConfig) -> None:
    """Stops, naming every problem, on a config that cannot run (the config's `__post_init__` calls it)."""
    problems = check_precision(config.mixed_precision)
    if config.model_type not in MODEL_TYPES:
        problems.append(f"model_type must be one of {MODEL_TYPES}, got {config.model_type!r}")
    if config.init_from is None and config.preset not in PRESETS:
        problems.append(f"preset must be one of {sorted(PRESETS)}, got {config.preset!r}")
    if config.init_from is None and config.tokenizer is None:
        problems.append("a run from scratch needs a tokenizer (train one with briskbert-train-tokenizer)")
    if config.attention_gate and (config.init_from or config.model_type != "briskbert"):
        problems.append("attention_gate is a choice of a new BriskBERT: a run from a checkpoint keeps its "
                        "architecture, and BertForMaskedLM has no gate")
    if not 0 <= config.head_warmup_steps < config.max_steps:
        problems.append(f"head_warmup_steps must be at least 0 and below max_steps ({config.max_steps}) so that the "
                        f"encoder trains too, got {config.head_warmup_steps}")
    if config.head_warmup_steps and config.init_from is None:
        problems.append("head_warmup_steps warms up a new MLM head on a pretrained encoder: set init_from")
    for name in ("mlm_probability", "eval_mlm_probability"):
        if not 0 < getattr(config, name) < 1:
            problems.append(f"{name} must be between 0 and 1, got {getattr(config, name)}")
    for name in ("micro_batch_size", "gradient_accumulation_steps", "max_steps", "log_every", "eval_every",
                 "save_every", "max_seq_length"):
        if getattr(config, name) < 1:
            problems.append(f"{name} must be at least 1, got {getattr(config, name)}")
    raise_problems("pretraining", problems)


@dataclass
class TrainerState:
    """What a checkpoint's trainer_state.json holds besides accelerate's state."""

    step: int = 0
    tokens_seen: int = 0
    train_seconds: float = 0.0
    data_state: dict | None = None  # a streaming dataset's position
    # rows per optimizer step over all processes, kept through resumes (step s reads the data order's rows
    # [s * global_batch_size, (s + 1) * global_batch_size)), and the processes that wrote the checkpoint
    global_batch_size: int = 0
    num_processes: int = 0


@dataclass
class LogWindow:
    """Sums over the optimizer steps since the last log record (this process's share)."""

    loss: float = 0.0
    masked: int = 0
    tokens: int = 0
    flops: float = 0.0
    start: float = field(default_factory=time.perf_counter)


def pretrain(config: PretrainConfig) -> dict:
    output = Path(config.output_dir)
    precision = resolve_precision(config.mixed_precision)
    # the frozen encoder of a head warm-up leaves parameters without gradients, which DDP must be told about
    accelerator = make_accelerator(output, precision, unused_parameters=config.head_warmup_steps > 0)
    # before anything is written: a second run on this folder refuses rather than interleave its checkpoints
    lock = OutputLock(output).acquire() if accelerator.is_main_process else None
    set_seed(config.seed)
    rank, world = accelerator.process_index, accelerator.num_processes

    # ---- data: documents -> tokenized, packed rows (or a folder prepared so); eval rows held out
    tokenizer, model, rows = tokenizer_model_and_rows(config, accelerator)
    train_rows, eval_rows, efficiency = split_rows(rows, config, rank, world)
    if efficiency is not None:
        accelerator.print(f"{len(train_rows)} packed training rows of {config.max_seq_length} tokens, packing "
                          f"efficiency {efficiency:.1%}")
    masking = MLMMasking.from_tokenizer(tokenizer, config.max_seq_length, config.whole_word_masking,
                                        config.random_replacement)
    collate = partial(collate_rows, pad_token_id=tokenizer.pad_token_id)

    # ---- optimisation: AdamW with decoupled decay, warmup then linear decay
    fused = {"fused": True} if accelerator.device.type in ("cpu", "cuda") else {}
    optimizer = torch.optim.AdamW(
        parameter_groups(model, config.weight_decay), lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_epsilon, **fused,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_factor(config))
    head_names = head_parameter_names(model)
    model, optimizer = accelerator.prepare(model, optimizer)
    # not prepared: accelerate would step a prepared scheduler once per process per step
    accelerator.register_for_checkpointing(scheduler)

    # ---- resume, logs, batches
    state = TrainerState()
    if config.resume:
        loaded = load_latest_checkpoint(accelerator, output / "checkpoints")
        if loaded is None:
            raise SystemExit(f"--resume: no complete checkpoint in {output / 'checkpoints'}; start without --resume.")
        state = TrainerState(**loaded)
        accelerator.print(f"resumed from step {state.step} ({state.tokens_seen:,} tokens seen)")
    accumulation = accumulation_keeping_the_global_batch(config, state, world, accelerator.print)
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        (output / "config.json").write_text(json.dumps(asdict(config), indent=2))
    accelerator.init_trackers("pretrain", config={k: str(v) for k, v in asdict(config).items()})
    metrics = MetricsLog(accelerator, output / "metrics.jsonl", resumed_step=state.step if config.resume else None)
    train_batches = training_batches(train_rows, config, state, rank, world, accumulation, collate)
    eval_rows = list(eval_rows)  # every process scores its own share of the held-out rows
    eval_batches = [collate(eval_rows[i:i + config.micro_batch_size])
                    for i in range(rank * config.micro_batch_size, len(eval_rows), world * config.micro_batch_size)]

    unwrapped = accelerator.unwrap_model(model)
    peak = config.peak_tflops * 1e12 or matmul_peak(
        accelerator.device.type, torch.bfloat16 if precision == "bf16" else torch.float32)
    flops_of = partial(step_flops, unwrapped.config.hidden_size, unwrapped.config.intermediate_size,
                       unwrapped.config.num_hidden_layers, unwrapped.config.vocab_size,
                       getattr(unwrapped.config, "mlp_type", "mlp") == "glu")
    stop_requested = []
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.append(True))

    # ---- the loop: one optimizer step per iteration, over `accumulation` micro-batches
    model.train()
    progress = tqdm(total=config.max_steps, initial=state.step, disable=not accelerator.is_local_main_process,
                    desc="pretraining")
    window, last_eval = LogWindow(), None
    startup_seconds = seconds_since_process_start()  # imports, data, model, resume: all before the first step
    while state.step < config.max_steps:
        step_start = time.perf_counter()
        head_only = state.step < config.head_warmup_steps
        if config.head_warmup_steps:
            freeze_all_but(unwrapped, head_names, frozen=head_only)
        learning_rate = scheduler.get_last_lr()[0]  # this step's; the log shows it beside the step's loss
        micro_batches = []
        for _ in range(accumulation):
            batch = next(train_batches)
            ids, labels = masking(batch["input_ids"], batch["attention_mask"], config.mlm_probability,
                                  mask_seeds(config.seed, state.step, rows=batch["row_id"]))
            micro_batches.append(({**batch, "input_ids": ids}, labels))
        step_loss, local_masked, grad_norm = optimizer_step(model, optimizer, scheduler, micro_batches, accelerator,
                                                             config)
        window.loss += step_loss
        window.masked += local_masked
        window.tokens += sum(int(b["attention_mask"].sum()) for b, _ in micro_batches)
        window.flops += sum(flops_of(segment_lengths(b), int((l != -100).sum()), encoder_frozen=head_only)
                            for b, l in micro_batches)
        state.step += 1
        state.train_seconds += time.perf_counter() - step_start
        progress.update(1)
        # every process must agree to stop: a SIGTERM, or the time budget (the slowest process's clock)
        flags = torch.tensor([float(bool(stop_requested)), state.train_seconds], device=accelerator.device)
        terminated, slowest = accelerator.reduce(flags, "max").tolist() if world > 1 else flags.tolist()
        last_step = state.step == config.max_steps or 0 < config.max_minutes * 60 <= slowest

        # an eval step is also a log step, so --eval-every is honoured whatever --log-every is
        evaluate_now = state.step % config.eval_every == 0 or last_step
        if state.step % config.log_every == 0 or evaluate_now:
            record = log_record(window, state, accelerator, learning_rate, grad_norm, peak * world)
            if config.head_warmup_steps:
                record["phase"] = "head" if head_only else "all"
            if evaluate_now:
                record["eval_loss"] = last_eval = evaluation_loss(model, eval_batches, masking, config, accelerator)
            metrics.log(record, progress.write)
            window = LogWindow()

        if state.step % config.save_every == 0 or terminated or last_step:
            if config.streaming:
                state.data_state = train_rows.state_dict()
            save_checkpoint(accelerator, output / "checkpoints", state.step, asdict(state), config.keep_checkpoints)
        if terminated:
            accelerator.print(f"SIGTERM: saved a checkpoint at step {state.step}; rerun with --resume to go on.")
            accelerator.end_training()
            sys.exit(143)
        if last_step:
            break
    progress.close()

    # ---- final export: weights + code + tokenizer, and the run's summary
    final = output / "final"
    weights = accelerator.get_state_dict(model)  # on every process: FSDP gathers the shards here
    summary = {
        "model_type": config.model_type, "preset": config.preset, "init_from": config.init_from,
        "parameters": unwrapped.num_parameters(), "steps": state.step, "tokens_seen": state.tokens_seen,
        "train_seconds": round(state.train_seconds, 2), "final_eval_loss": last_eval,
        "tokens_per_s": state.tokens_seen / max(state.train_seconds, 1e-9),
        "packing_efficiency": efficiency, "num_processes": world, "global_batch_size": state.global_batch_size,
        "gradient_accumulation_steps": accumulation, "device": accelerator.device.type,
        "mixed_precision": precision, "max_seq_length": config.max_seq_length,
        "mlm_probability": config.mlm_probability, "startup_seconds": round(startup_seconds, 2),
        "peak_resident_mb": round(peak_resident_mb(), 1),  # the main process's
    }
    if accelerator.is_main_process:
        savable, weights = savable_model(unwrapped, weights)
        savable.save_pretrained(final, state_dict=weights)
        tokenizer.save_pretrained(final)
        (output / "summary.json").write_text(json.dumps(summary, indent=2))
        accelerator.print(json.dumps(summary, indent=2))
        if config.push_to_hub:  # after summary.json: the card is rendered from it
            push_folder(final, config.push_to_hub, echo=accelerator.print)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if lock is not None:
        lock.release()
    return summary


def tokenizer_model_and_rows(config: PretrainConfig, accelerator):
    """The run's tokenizer and model, and its packed rows: memory-mapped from a folder briskbert-prepare-data wrote,
    or tokenized and packed from raw files or a hub dataset here (by the main process first; the others then read
    its datasets cache)."""
    prepared = prepared_folder([data_path(source) for source in config.train_data])
    if prepared is None:
        corpus = load_sources(config.train_data, config.text_column, config.hub_config, config.streaming)
        tokenizer, model = build_tokenizer_and_model(config, corpus, accelerator.print)
        with accelerator.main_process_first():
            rows = tokenize_and_pack(corpus, tokenizer, config.max_seq_length, config.text_column)
        return tokenizer, model, rows
    if config.streaming:
        raise SystemExit(f"{prepared} is a prepared folder, which is memory-mapped, not streamed: drop --streaming.")
    if config.extend_tokenizer_tokens:
        raise SystemExit(
            f"{prepared} was tokenized already, so extend_tokenizer_tokens cannot add pieces to its tokenizer: "
            f"extend the tokenizer first (briskbert-train-tokenizer --extend), prepare the corpus with it, and pass "
            f"it as --tokenizer.")
    tokenizer, model = build_tokenizer_and_model(config, None, accelerator.print)
    with accelerator.local_main_process_first():  # it hashes the files; its machine's others then check sizes
        rows, record = load_prepared(prepared, tokenizer, config.max_seq_length,
                                     hash_files=accelerator.is_local_main_process)
    accelerator.print(f"prepared rows from {prepared} ({record['rows']:,} rows, {record['tokens']:,} tokens)")
    return tokenizer, model, rows


def split_rows(rows, config: PretrainConfig, rank: int, world: int):
    """(training rows, held-out eval rows, packing efficiency or None when streaming). A streamed corpus holds out
    its first rows and is split between processes by `datasets`; an in-memory one holds out its last rows."""
    if config.streaming:
        held_out = list(islice(rows, config.eval_rows))
        return split_dataset_by_node(rows.skip(config.eval_rows), rank, world), held_out, None
    if len(rows) <= config.eval_rows:
        raise SystemExit(f"The corpus packs into {len(rows)} rows of {config.max_seq_length} tokens; "
                         f"eval_rows={config.eval_rows} would leave none to train on. Use more text.")
    train_rows = rows.select(range(len(rows) - config.eval_rows))
    eval_rows = rows.select(range(len(rows) - config.eval_rows, len(rows)))
    efficiency = packing_efficiency(row_lengths(rows)[:-config.eval_rows], config.max_seq_length)
    return train_rows, eval_rows, efficiency


def accumulation_keeping_the_global_batch(config: PretrainConfig, state: TrainerState, world: int, echo) -> int:
    """The gradient accumulation steps of this launch. A new run's global batch is micro_batch_size x processes x
    gradient_accumulation_steps, recorded in `state`; a resumed run keeps its checkpoint's (the data order counts
    steps in global batches), adjusting accumulation to this launch's processes and micro-batch, and saying so."""
    if not state.global_batch_size:  # a new run, or a checkpoint from before the global batch was recorded
        state.global_batch_size = config.micro_batch_size * world * config.gradient_accumulation_steps
    written_by = state.num_processes or world
    if config.streaming and world != written_by:
        raise SystemExit(f"A streamed corpus is split between processes by datasets, so its position cannot move to "
                         f"another number of processes: resume on {written_by} processes, or prepare the "
                         f"corpus (briskbert-prepare-data) and train on the prepared folder.")
    global_batch, per_micro_step = state.global_batch_size, config.micro_batch_size * world
    if global_batch % per_micro_step:
        fits = [size for size in range(1, global_batch // world + 1) if global_batch % (size * world) == 0]
        raise SystemExit(
            f"The checkpoint's global batch of {global_batch} rows cannot be split into micro-batches of "
            f"{config.micro_batch_size} rows on {world} processes: pass --micro-batch-size one of {fits[-4:]}, or "
            f"resume on a number of processes that divides {global_batch // config.micro_batch_size}.")
    accumulation = global_batch // per_micro_step
    if accumulation != config.gradient_accumulation_steps:
        echo(f"global batch kept at {global_batch} rows: {config.micro_batch_size} rows x {world} processes x "
             f"{accumulation} accumulation steps (the checkpoint was written by {written_by} processes; "
             f"gradient_accumulation_steps {config.gradient_accumulation_steps} -> {accumulation})")
    state.num_processes = world
    return accumulation


def training_batches(train_rows, config: PretrainConfig, state: TrainerState, rank: int, world: int,
                     accumulation: int, collate):
    """An endless iterator of this process's micro-batches, starting where `state` left off."""
    if config.streaming:
        if state.data_state is not None:
            train_rows.load_state_dict(state.data_state)
        return (collate(list(chunk)) for chunk in _chunks(_endless(train_rows), config.micro_batch_size))
    sampler = GlobalOrderBatchSampler(len(train_rows), config.micro_batch_size, config.seed, rank, world, accumulation,
                                      start_step=state.step)
    return iter(DataLoader(train_rows, batch_sampler=sampler, collate_fn=collate,
                           num_workers=config.dataloader_workers))


def optimizer_step(model, optimizer, scheduler, micro_batches, accelerator, config) -> tuple[float, int, torch.Tensor]:
    """Backward over every micro-batch, then one clipped AdamW step; returns (summed masked-token loss, this
    process's masked tokens, gradient norm). The loss is normalised by the masked tokens of the whole accumulated
    batch on every process; DDP averages the processes' gradients, so each divides by the global count / processes."""
    world = accelerator.num_processes
    local_masked = sum(int((labels != -100).sum()) for _, labels in micro_batches)
    global_masked = accelerator.reduce(torch.tensor(float(local_masked), device=accelerator.device), "sum")
    normaliser = global_masked.clamp(min=1) / world
    step_loss = torch.zeros((), device=accelerator.device)
    for index, (batch, labels) in enumerate(micro_batches):
        sync = index == len(micro_batches) - 1
        with nullcontext() if sync else accelerator.no_sync(model):
            loss = masked_lm_loss(model, config.model_type, batch, labels.to(accelerator.device), normaliser)
            accelerator.backward(loss)
        step_loss += loss.detach() * normaliser
    grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return step_loss.item(), local_masked, grad_norm


def log_record(window: LogWindow, state: TrainerState, accelerator, learning_rate: float, grad_norm,
               peak: float) -> dict:
    """One metrics.jsonl record from every process's window; adds the window's tokens to `state.tokens_seen`."""
    totals = accelerator.reduce(torch.tensor([window.loss, window.masked, window.tokens, window.flops],
                                             dtype=torch.float64, device=accelerator.device), "sum").tolist()
    seconds = time.perf_counter() - window.start
    state.tokens_seen += int(totals[2])
    return {"step": state.step, "loss": totals[0] / max(totals[1], 1), "lr": learning_rate,
            "grad_norm": float(grad_norm), "tokens_per_s": totals[2] / seconds, "mfu": totals[3] / seconds / peak,
            "tokens_seen": state.tokens_seen, "train_seconds": round(state.train_seconds, 2)}


def evaluation_loss(model, eval_batches, masking: MLMMasking, config: PretrainConfig, accelerator) -> float:
    """Mean MLM loss per masked token over the held-out rows of every process, at the fixed eval masking rate."""
    model.eval()
    total = torch.zeros(2)  # summed loss, masked tokens
    with torch.no_grad():
        for batch in eval_batches:
            ids, labels = masking(batch["input_ids"], batch["attention_mask"], config.eval_mlm_probability,
                                  mask_seeds(config.seed, -1, rows=batch["row_id"]))
            total[0] += masked_lm_loss(model, config.model_type, {**batch, "input_ids": ids},
                                       labels.to(accelerator.device), 1).item()
            total[1] += (labels != -100).sum().item()
    model.train()
    summed = accelerator.reduce(total.to(accelerator.device), "sum")
    return (summed[0] / summed[1].clamp(min=1)).item()


def masked_lm_loss(model, model_type: str, batch: dict, labels: torch.Tensor, normaliser) -> torch.Tensor:
    """Cross-entropy summed over the masked tokens, divided by `normaliser` (1 gives the sum)."""
    device = labels.device
    if model_type == "briskbert":
        # given labels in training, BriskBERT's sparse head decodes only the masked tokens
        inputs = {key: batch[key].to(device) for key in ("input_ids", "attention_mask", "sequence_ids")}
        return model(**inputs, labels=labels, num_items_in_batch=normaliser).loss
    logits = model(**{key: value.to(device) for key, value in block_diagonal_inputs(batch).items()}).logits
    masked = labels != -100
    return F.cross_entropy(logits[masked].float(), labels[masked], reduction="sum") / normaliser


def learning_rate_factor(config: PretrainConfig):
    """The factor of `learning_rate` at each optimizer step. With a head warm-up: its steps run at
    head_learning_rate (a linear warmup over their first warmup_ratio), then the rest of the run warms up and decays
    as a run without one would over its own steps."""
    head = config.head_warmup_steps
    main = warmup_then_linear_decay(math.ceil(config.warmup_ratio * (config.max_steps - head)),
                                    config.max_steps - head, config.final_lr_ratio)
    head_warmup = max(1, math.ceil(config.warmup_ratio * head))

    def factor(step: int) -> float:
        if step < head:
            return config.head_learning_rate / config.learning_rate * min(1.0, (step + 1) / head_warmup)
        return main(step - head)
    return factor


def freeze_all_but(model, trainable: set[str], frozen: bool) -> None:
    """With `frozen`, only the parameters named in `trainable` get gradients; else all of them do."""
    for name, parameter in model.named_parameters():
        if name not in trainable:
            parameter.requires_grad_(not frozen)


def warmup_then_linear_decay(warmup_steps: int, total_steps: int, final_ratio: float):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return max(final_ratio, 1 - (1 - final_ratio) * progress)
    return factor


def mask_seeds(*keys: int, rows: torch.Tensor) -> list[int]:
    """One seed per row from (run seed, step, row index): a row's mask never depends on the batch layout."""
    base = 0
    for key in keys:
        base = (base * 1_000_003 + key) % (2**61)
    return [(base * 1_000_033 + int(row)) % (2**63) for row in rows]


def _endless(rows):
    epoch = 0
    while True:
        rows.set_epoch(epoch)
        yield from rows
        epoch += 1


def _chunks(iterable, size):
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk
