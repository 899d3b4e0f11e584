"""Pretrain BriskBERT (or the HF-BERT baseline) with masked language modelling, under `accelerate launch`.

    accelerate launch scripts/pretrain.py --config hub_configs/tiny-cpu.yaml --output-dir outputs/tiny
    accelerate launch --cpu --num_processes 2 scripts/pretrain.py --config hub_configs/tiny-cpu.yaml ...
    ... --resume                      continue from the latest complete checkpoint in <output-dir>/checkpoints
    ... --init-from <folder|hub id>   continued pretraining of a pretrained checkpoint

Writes <output-dir>/checkpoints/, final/ (save_pretrained with code and tokenizer), metrics.jsonl,
summary.json and TensorBoard logs. The reusable parts live in `trainers/`; this file is the loop.
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

from datasets.distributed import split_dataset_by_node
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoModelForMaskedLM, AutoTokenizer, BertConfig, BertForMaskedLM

from briskbert import BriskBertConfig, BriskBertForMaskedLM
from briskbert.modeling.configuration_briskbert import PRESETS
from briskbert.trainers.checkpointing import load_latest_checkpoint, save_checkpoint
from briskbert.trainers.config import parse_config
from briskbert.trainers.corpus import load_corpus, tokenize_and_pack
from briskbert.trainers.hub import push_folder
from briskbert.trainers.masking import MLMMasking
from briskbert.trainers.metrics_log import MetricsLog
from briskbert.trainers.packing import block_diagonal_inputs, collate_rows
from briskbert.trainers.sampling import ShardedBatchSampler
from briskbert.trainers.throughput import matmul_peak, segment_lengths, step_flops
from briskbert.trainers.tokenizer import extend_tokenizer, grow_embeddings

REPO = Path(__file__).resolve().parent.parent
MODEL_TYPES = ("briskbert", "bert")
PRECISIONS = ("auto", "no", "bf16", "fp16")


@dataclass
class PretrainConfig:
    # model
    model_type: str = "briskbert"  # "bert": transformers' BertForMaskedLM of the same preset, as a baseline
    preset: str = "tiny"
    attn_implementation: str = "sdpa"
    hidden_dropout_prob: float = 0.1
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


def check(config: PretrainConfig) -> None:
    problems = []
    if config.model_type not in MODEL_TYPES:
        problems.append(f"model_type must be one of {MODEL_TYPES}, got {config.model_type!r}")
    if config.init_from is None and config.preset not in PRESETS:
        problems.append(f"preset must be one of {sorted(PRESETS)}, got {config.preset!r}")
    if config.init_from is None and config.tokenizer is None:
        problems.append("a run from scratch needs a tokenizer (train one with scripts/train_tokenizer.py)")
    if config.mixed_precision not in PRECISIONS:
        problems.append(f"mixed_precision must be one of {PRECISIONS}, got {config.mixed_precision!r}")
    for name in ("mlm_probability", "eval_mlm_probability"):
        if not 0 < getattr(config, name) < 1:
            problems.append(f"{name} must be between 0 and 1, got {getattr(config, name)}")
    for name in ("micro_batch_size", "gradient_accumulation_steps", "max_steps", "log_every", "eval_every",
                 "save_every", "max_seq_length"):
        if getattr(config, name) < 1:
            problems.append(f"{name} must be at least 1, got {getattr(config, name)}")
    if problems:
        raise SystemExit("Invalid pretraining config:\n  - " + "\n  - ".join(problems))


def local_path_or_hub_id(name: str) -> str:
    return str(REPO / name) if (REPO / name).exists() and not Path(name).exists() else name


def build_tokenizer_and_model(config: PretrainConfig, corpus, accelerator):
    tokenizer = AutoTokenizer.from_pretrained(local_path_or_hub_id(config.tokenizer or config.init_from),
                                              trust_remote_code=True)
    if config.init_from:
        model = AutoModelForMaskedLM.from_pretrained(local_path_or_hub_id(config.init_from), trust_remote_code=True)
        if config.extend_tokenizer_tokens:
            texts = [t for t in islice((row[config.text_column] for row in corpus), 200_000) if t]
            extended, new_tokens = extend_tokenizer(tokenizer, texts, config.extend_tokenizer_tokens)
            grow_embeddings(model, tokenizer, extended)
            accelerator.print(f"tokenizer extended by {len(new_tokens)} domain pieces: {new_tokens[:12]} ...")
            tokenizer = extended
    elif config.model_type == "bert":
        shape = PRESETS[config.preset]
        model = BertForMaskedLM(BertConfig(
            vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, max_position_embeddings=512,
            hidden_size=shape["hidden_size"], num_hidden_layers=shape["num_hidden_layers"],
            num_attention_heads=shape["num_attention_heads"], intermediate_size=shape["intermediate_size"],
            attn_implementation=config.attn_implementation, hidden_dropout_prob=config.hidden_dropout_prob,
        ))
    else:
        model = BriskBertForMaskedLM(BriskBertConfig.from_preset(
            config.preset, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
            attn_implementation=config.attn_implementation, hidden_dropout_prob=config.hidden_dropout_prob,
        ))
    if config.init_from and config.tokenizer:
        own = AutoTokenizer.from_pretrained(local_path_or_hub_id(config.init_from), trust_remote_code=True)
        new_vocab = tokenizer.get_vocab()
        extends_own = len(tokenizer) > len(own) and all(
            new_vocab.get(token) == index for token, index in own.get_vocab().items())
        if extends_own:  # e.g. scripts/train_tokenizer.py --extend: new rows start from their old pieces' mean
            grown = grow_embeddings(model, own, tokenizer)
            accelerator.print(f"embeddings grown by {len(grown)} rows for the extended tokenizer {config.tokenizer}")
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        raise SystemExit(
            f"The tokenizer has {len(tokenizer)} tokens but the model only {model.get_input_embeddings().num_embeddings}"
            f" embeddings, and it does not extend the checkpoint's own tokenizer (old ids must keep their place): "
            f"pretrain with the checkpoint's tokenizer, extend that one (scripts/train_tokenizer.py --extend), or set "
            f"extend_tokenizer_tokens."
        )
    return tokenizer, model


def parameter_groups(model, weight_decay: float) -> list[dict]:
    """Decay matrices only: biases and norm weights (all 1-D parameters) are left alone (MosaicBERT, BERT)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


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


def main(argv=None):
    config = parse_config(PretrainConfig, argv)
    check(config)
    output = Path(config.output_dir)
    # with no GPU, processes started by `accelerate launch --multi_gpu` (hub_configs/accelerate/cpu-2proc.yaml)
    # join a gloo process group on the CPU instead of each running alone
    precision = config.mixed_precision
    if precision == "auto":  # bf16 autocast pays on GPUs; on CPUs without bf16 matmul units it is slower
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    accelerator = Accelerator(cpu=torch.accelerator.current_accelerator() is None, log_with="tensorboard",
                              mixed_precision=precision, project_dir=str(output))
    set_seed(config.seed)
    torch.set_flush_denormal(True)  # on CPU, denormal values in small fresh weights slow fp32 math many-fold
    rank, world = accelerator.process_index, accelerator.num_processes

    # ---- data: documents -> tokenized, packed rows; eval rows held out
    source = [local_path_or_hub_id(s) for s in config.train_data]
    corpus = load_corpus(source if len(source) > 1 or Path(source[0]).exists() else source[0],
                         config.text_column, config.hub_config, streaming=config.streaming)
    tokenizer, model = build_tokenizer_and_model(config, corpus, accelerator)
    with accelerator.main_process_first():  # the others then read the main process's datasets cache
        rows = tokenize_and_pack(corpus, tokenizer, config.max_seq_length, config.text_column)
    collate = partial(collate_rows, pad_token_id=tokenizer.pad_token_id)
    if config.streaming:
        eval_rows = list(islice(rows, config.eval_rows))
        train_rows = split_dataset_by_node(rows.skip(config.eval_rows), rank, world)
        efficiency = None
    else:
        if len(rows) <= config.eval_rows:
            raise SystemExit(f"The corpus packs into {len(rows)} rows of {config.max_seq_length} tokens; "
                             f"eval_rows={config.eval_rows} would leave none to train on. Use more text.")
        eval_rows = rows.select(range(len(rows) - config.eval_rows, len(rows)))
        train_rows = rows.select(range(len(rows) - config.eval_rows))
        lengths = [len(ids) for ids in train_rows["input_ids"]]
        efficiency = sum(lengths) / (len(lengths) * config.max_seq_length)
        accelerator.print(f"{len(train_rows)} packed training rows of {config.max_seq_length} tokens, "
                          f"{sum(lengths):,} real tokens, packing efficiency {efficiency:.1%}")
    masking = MLMMasking.from_tokenizer(tokenizer, config.max_seq_length, config.whole_word_masking,
                                        config.random_replacement)

    # ---- optimisation: AdamW with decoupled decay, warmup then linear decay
    fused = {"fused": True} if accelerator.device.type in ("cpu", "cuda") else {}
    optimizer = torch.optim.AdamW(
        parameter_groups(model, config.weight_decay), lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_epsilon, **fused,
    )
    warmup = math.ceil(config.warmup_ratio * config.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_then_linear_decay(warmup, config.max_steps, config.final_lr_ratio)
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    # not prepared: accelerate would step a prepared scheduler once per process per step
    accelerator.register_for_checkpointing(scheduler)

    # ---- resume
    state = {"step": 0, "tokens_seen": 0, "train_seconds": 0.0, "data_state": None}
    if config.resume:
        loaded = load_latest_checkpoint(accelerator, output / "checkpoints")
        if loaded is None:
            raise SystemExit(f"--resume: no complete checkpoint in {output / 'checkpoints'}; start without --resume.")
        state = loaded
        accelerator.print(f"resumed from step {state['step']} ({state['tokens_seen']:,} tokens seen)")
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        (output / "config.json").write_text(json.dumps(asdict(config), indent=2))
    accelerator.init_trackers("pretrain", config={k: str(v) for k, v in asdict(config).items()})
    metrics = MetricsLog(accelerator, output / "metrics.jsonl", resumed_step=state["step"] if config.resume else None)

    accumulation = config.gradient_accumulation_steps
    if config.streaming:
        if state["data_state"] is not None:
            train_rows.load_state_dict(state["data_state"])
        train_batches = (collate(list(chunk)) for chunk in _chunks(_endless(train_rows), config.micro_batch_size))
    else:
        sampler = ShardedBatchSampler(len(train_rows), config.micro_batch_size, config.seed, rank, world,
                                      start_batch=state["step"] * accumulation)
        train_batches = iter(DataLoader(train_rows, batch_sampler=sampler, collate_fn=collate,
                                        num_workers=config.dataloader_workers))
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

    def evaluate() -> float:
        model.eval()
        total = torch.zeros(2)  # summed loss, masked tokens
        with torch.no_grad():
            for index, batch in enumerate(eval_batches):
                ids, labels = masking(batch["input_ids"], batch["attention_mask"], config.eval_mlm_probability,
                                      mask_seeds(config.seed, -1, rows=batch["row_id"]))
                total[0] += masked_lm_loss(model, config.model_type, {**batch, "input_ids": ids},
                                           labels.to(accelerator.device), 1).item()
                total[1] += (labels != -100).sum().item()
        model.train()
        summed = accelerator.reduce(total.to(accelerator.device), "sum")
        return (summed[0] / summed[1].clamp(min=1)).item()

    def checkpoint():
        if config.streaming:
            state["data_state"] = train_rows.state_dict()
        save_checkpoint(accelerator, output / "checkpoints", state["step"], state, config.keep_checkpoints)

    # ---- the loop: one optimizer step per iteration, over `accumulation` micro-batches
    model.train()
    progress = tqdm(total=config.max_steps, initial=state["step"], disable=not accelerator.is_local_main_process,
                    desc="pretraining")
    window = {"loss": 0.0, "masked": 0, "tokens": 0, "flops": 0.0, "start": time.perf_counter()}
    last_eval = None
    while state["step"] < config.max_steps:
        step_start = time.perf_counter()
        micro_batches = []
        for micro in range(accumulation):
            batch = next(train_batches)
            ids, labels = masking(batch["input_ids"], batch["attention_mask"], config.mlm_probability,
                                  mask_seeds(config.seed, state["step"], rows=batch["row_id"]))
            micro_batches.append(({**batch, "input_ids": ids}, labels))
        # normalise by the masked tokens of the whole accumulated batch on every process; DDP averages the
        # processes' gradients, so each process divides by the global count / number of processes
        local_masked = sum(int((labels != -100).sum()) for _, labels in micro_batches)
        global_masked = accelerator.reduce(torch.tensor(float(local_masked), device=accelerator.device), "sum")
        normaliser = global_masked.clamp(min=1) / world
        step_loss = torch.zeros((), device=accelerator.device)
        for micro, (batch, labels) in enumerate(micro_batches):
            sync = micro == accumulation - 1
            with nullcontext() if sync else accelerator.no_sync(model):
                loss = masked_lm_loss(model, config.model_type, batch, labels.to(accelerator.device), normaliser)
                accelerator.backward(loss)
            step_loss += loss.detach() * normaliser
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        tokens = sum(int(b["attention_mask"].sum()) for b, _ in micro_batches)
        window["loss"] += step_loss.item()
        window["masked"] += local_masked
        window["tokens"] += tokens
        window["flops"] += sum(flops_of(segment_lengths(b), int((l != -100).sum())) for b, l in micro_batches)
        state["step"] += 1
        state["train_seconds"] += time.perf_counter() - step_start
        progress.update(1)
        # every process must agree to stop: a SIGTERM, or the time budget (the slowest process's clock)
        flags = torch.tensor([float(bool(stop_requested)), state["train_seconds"]], device=accelerator.device)
        terminated, slowest = accelerator.reduce(flags, "max").tolist() if world > 1 else flags.tolist()
        last_step = state["step"] == config.max_steps or 0 < config.max_minutes * 60 <= slowest

        if state["step"] % config.log_every == 0 or last_step:
            totals = accelerator.reduce(torch.tensor([window["loss"], window["masked"], window["tokens"],
                                                      window["flops"]], dtype=torch.float64,
                                                     device=accelerator.device), "sum").tolist()
            seconds = time.perf_counter() - window["start"]
            state["tokens_seen"] += int(totals[2])
            record = {"step": state["step"], "loss": totals[0] / max(totals[1], 1),
                      "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm),
                      "tokens_per_s": totals[2] / seconds, "mfu": totals[3] / seconds / (peak * world),
                      "tokens_seen": state["tokens_seen"], "train_seconds": round(state["train_seconds"], 2)}
            if state["step"] % config.eval_every == 0 or last_step:
                record["eval_loss"] = last_eval = evaluate()
            metrics.log(record, progress.write)
            window = {"loss": 0.0, "masked": 0, "tokens": 0, "flops": 0.0, "start": time.perf_counter()}

        if state["step"] % config.save_every == 0 or terminated or last_step:
            checkpoint()
        if terminated:
            accelerator.print(f"SIGTERM: saved a checkpoint at step {state['step']}; rerun with --resume to go on.")
            accelerator.end_training()
            sys.exit(143)
        if last_step:
            break
    progress.close()

    # ---- final export: weights + code + tokenizer, and the run's summary
    final = output / "final"
    weights = accelerator.get_state_dict(model)  # on every process: FSDP gathers the shards here
    if accelerator.is_main_process:
        unwrapped.save_pretrained(final, state_dict=weights)
        tokenizer.save_pretrained(final)
        summary = {
            "model_type": config.model_type, "preset": config.preset, "init_from": config.init_from,
            "parameters": unwrapped.num_parameters(), "steps": state["step"], "tokens_seen": state["tokens_seen"],
            "train_seconds": round(state["train_seconds"], 2), "final_eval_loss": last_eval,
            "tokens_per_s": state["tokens_seen"] / max(state["train_seconds"], 1e-9),
            "packing_efficiency": efficiency, "num_processes": world, "device": accelerator.device.type,
            "mixed_precision": precision, "max_seq_length": config.max_seq_length,
            "mlm_probability": config.mlm_probability,
        }
        (output / "summary.json").write_text(json.dumps(summary, indent=2))
        accelerator.print(json.dumps(summary, indent=2))
        if config.push_to_hub:  # after summary.json: the card is rendered from it
            push_folder(final, config.push_to_hub, echo=accelerator.print)
    accelerator.wait_for_everyone()
    accelerator.end_training()


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


if __name__ == "__main__":
    main()
