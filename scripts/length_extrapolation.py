"""ALiBi length extrapolation: held-out MLM loss of a model trained at 128 tokens, at 128/256/512/1024 tokens.

    python scripts/length_extrapolation.py --model runs/tiny/final
    python scripts/length_extrapolation.py --model runs/tiny/final --lengths 128 256 512 1024 --tokens 8176

The same stretch of real text (documents of --text joined with [SEP], one document per line) is cut into rows
of each length, and the same tokens are masked at every length (15%, fixed seed, all replaced by [MASK]), so
the only thing that changes between lengths is how much context each masked token sees. Writes
<model>/length_extrapolation.json, which the model card (trainers/model_card.py) reads.
"""

import argparse
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModelForMaskedLM, AutoTokenizer

import briskbert  # noqa: F401  (registers BriskBERT, for folders saved without code)

REPO = Path(__file__).resolve().parent.parent


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
    record = {"model": str(model_dir), "text": str(text.relative_to(REPO) if text.is_relative_to(REPO) else text),
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a saved BriskBERT masked-LM folder")
    parser.add_argument("--text", type=Path, default=REPO / "data/corpus/en/us_inaugural_addresses.txt")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--tokens", type=int, default=4 * 1022, help="tokens scored at every length (default: 4 "
                                                                     "rows of 1024)")
    parser.add_argument("--mlm-probability", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="default: <model>/length_extrapolation.json")
    args = parser.parse_args(argv)
    if any(length < 3 for length in args.lengths) or args.tokens < max(args.lengths) - 2:
        parser.error("--lengths must be at least 3 and --tokens at least the longest length minus 2")
    torch.manual_seed(args.seed)
    record = measure(args.model, args.text, args.lengths, args.tokens, args.mlm_probability, args.seed)
    output = args.output or Path(args.model) / "length_extrapolation.json"
    output.write_text(json.dumps(record, indent=2))
    print(f"wrote {output}")
    return record


if __name__ == "__main__":
    main()
