"""ALiBi length extrapolation: held-out MLM loss of a model trained at 128 tokens, at 128/256/512/1024 tokens.

    record = measure("runs/tiny/final", Path(data_path(DEFAULT_TEXT)), [128, 256, 512, 1024], tokens=4088)

The same stretch of real text (documents of --text joined with [SEP], one document per line) is cut into rows
of each length, and the same tokens are masked at every length (15%, fixed seed, all replaced by [MASK]), so
the only thing that changes between lengths is how much context each masked token sees. scripts/length_extrapolation.py
writes the record to <model>/length_extrapolation.json, which the model card (hub/model_card.py) reads.
"""

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModelForMaskedLM, AutoTokenizer

import briskbert  # noqa: F401  (registers BriskBERT, for folders saved without code)

DEFAULT_TEXT = "data/corpus/en/us_inaugural_addresses.txt"  # bundled with the package


def token_stream(tokenizer, text_file: Path, count: int) -> list[int]:
    """The first `count` tokens of the file's documents, each followed by [SEP]."""
    ids = []
    with text_file.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                ids += tokenizer(line.strip(), add_special_tokens=False)["input_ids"] + [tokenizer.sep_token_id]
            if len(ids) >= count:
                return ids[:count]
    raise SystemExit(f"{text_file} holds only {len(ids)} tokens; --tokens {count} needs more text.")


@torch.no_grad()
def masked_loss(model, tokenizer, stream: torch.Tensor, masked: torch.Tensor, length: int, batch_size: int,
                scored: int):
    """Rows of [CLS] + (length - 2) stream tokens + [SEP]; summed cross-entropy and count over the masked tokens
    among the first `scored` stream tokens (the same ones at every length)."""
    body = length - 2
    rows = stream.numel() // body
    ids = stream[: rows * body].view(rows, body)
    mask = masked[: rows * body].view(rows, body)
    cls = torch.full((rows, 1), tokenizer.cls_token_id)
    sep = torch.full((rows, 1), tokenizer.sep_token_id)
    inputs = torch.cat([cls, ids.masked_fill(mask, tokenizer.mask_token_id), sep], 1)
    in_scope = (torch.arange(rows * body) < scored).view(rows, body)
    labels = torch.cat([torch.full((rows, 1), -100), ids.masked_fill(~(mask & in_scope), -100),
                        torch.full((rows, 1), -100)], 1)
    total, count = 0.0, 0
    for start in range(0, rows, batch_size):
        batch = inputs[start:start + batch_size]
        logits = model(input_ids=batch, attention_mask=torch.ones_like(batch)).logits
        target = labels[start:start + batch_size]
        chosen = target != -100
        total += F.cross_entropy(logits[chosen].float(), target[chosen], reduction="sum").item()
        count += int(chosen.sum())
    return rows, total, count


def measure(model_dir: str, text: Path, lengths: list[int], tokens: int, mlm_probability: float = 0.15,
            seed: int = 0, batch_size: int = 8) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    tokenizer.model_max_length = 1 << 30  # the stream is cut into rows here, not by the tokenizer
    model = AutoModelForMaskedLM.from_pretrained(model_dir, trust_remote_code=True).eval()
    stream = torch.tensor(token_stream(tokenizer, text, tokens))
    generator = torch.Generator().manual_seed(seed)
    masked = (torch.rand(stream.numel(), generator=generator) < mlm_probability) & (stream != tokenizer.sep_token_id)
    scored = min(tokens // (length - 2) * (length - 2) for length in lengths)
    summary = json.loads((Path(model_dir).parent / "summary.json").read_text()) \
        if (Path(model_dir).parent / "summary.json").is_file() else {}
    position = getattr(model.config, "position_embedding_type", "absolute")
    limit = getattr(model.config, "max_position_embeddings", None)
    record = {"model": str(model_dir), "text": text_name(text),
              "tokens_scored": scored, "mlm_probability": mlm_probability, "seed": seed,
              "trained_seq_length": summary.get("max_seq_length"), "position_embedding_type": position,
              "lengths": {}}
    for length in lengths:
        if position != "alibi" and limit is not None and length > limit:
            record["lengths"][str(length)] = {"loss": None, "note": f"beyond its {limit} learned positions"}
            continue
        rows, total, count = masked_loss(model, tokenizer, stream, masked, length, batch_size, scored)
        loss = total / max(count, 1)
        record["lengths"][str(length)] = {"rows": rows, "masked_tokens": count, "loss": loss,
                                          "perplexity": math.exp(min(loss, 50))}
        print(f"{length:>5} tokens: {rows:>3} rows, {count} masked tokens, MLM loss {loss:.3f}")
    return record




def text_name(text: Path) -> str:
    """How the record names the text: `data/...` for one of the repo's (or the package's bundled) samples."""
    parts = text.resolve().parts
    if "data" in parts:
        index = len(parts) - 1 - parts[::-1].index("data")
        return "/".join(parts[index:])
    return str(text)
