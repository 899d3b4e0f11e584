"""Outlier activations, and what plain int8 costs a model's MLM loss: the measurement behind `attention_gate`.

For each pretrained model (a folder with an MLM head), on the same held-out texts and the same 15% masks:
- the largest |x| entering each kind of encoder Linear (attention Wqkv/Wo, feed-forward Wi/Wo) and the largest
  kurtosis there, over all layers: heads that learn to "do nothing" drive a few channels to huge values
  (Bondarenko et al. 2023), and those are what per-tensor int8 activations lose;
- the MLM loss of the fp32 model and of its W8A8 copy (`quantize(method="dynamic")`: int8 weights per row, int8
  activations per tensor, no smoothing or fp32 channels).

    python -m briskbert.trainers.speed.outliers runs/gate-off/final runs/gate-on/final \\
        --texts data/corpus/en --output docs/attention-gate.json
"""

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from ..data.corpus import read_texts
from ..data.masking import MLMMasking
from ..inference.quantize import ROLES, quantize
from .int8_methods import activation_statistics


def masked_batches(tokenizer, texts: list[str], batch_size: int = 16, max_length: int = 128, seed: int = 0):
    """(labels, batch) pairs: the texts tokenized, 15% of their word pieces masked with fixed seeds."""
    masking = MLMMasking.from_tokenizer(tokenizer, max_length)
    batches = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length, padding=True,
                          return_tensors="pt")
        seeds = [seed * 1_000_003 + start + row for row in range(len(batch["input_ids"]))]
        ids, labels = masking(batch["input_ids"], batch["attention_mask"], 0.15, seeds)
        batches.append((labels, {"input_ids": ids, "attention_mask": batch["attention_mask"]}))
    return batches


@torch.no_grad()
def mlm_loss(model, batches) -> float:
    total, count = 0.0, 0
    for labels, batch in batches:
        masked = int((labels != -100).sum())
        total += model(**batch, labels=labels).loss.item() * masked
        count += masked
    return total / count


def measure(folder: str, texts: list[str]) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True).eval()
    batches = masked_batches(tokenizer, texts)
    with torch.no_grad():
        rows = activation_statistics(model, batches)
    by_role = {role: [row for row in rows if row["linear"].endswith(role)] for role in ROLES}
    fp32 = mlm_loss(model, batches)
    int8 = mlm_loss(quantize(model, method="dynamic"), batches)
    return {
        "model": folder, "attention_gate": bool(getattr(model.config, "attention_gate", False)),
        "max_abs": max(row["max_abs"] for row in rows), "max_kurtosis": max(row["kurtosis"] for row in rows),
        "by_role": {role: {"max_abs": max(r["max_abs"] for r in group), "max_kurtosis": max(r["kurtosis"] for r in group)}
                    for role, group in by_role.items()},
        "mlm_loss_fp32": fp32, "mlm_loss_w8a8": int8, "w8a8_loss_increase": int8 - fp32,
        "texts": len(texts), "masked_tokens": sum(int((labels != -100).sum()) for labels, _ in batches),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model folders with an MLM head (a pretraining run's final/)")
    parser.add_argument("--texts", required=True, help="held-out text: files, a folder or a hub dataset id")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--num-texts", type=int, default=512)
    parser.add_argument("--output", type=Path, default=None, help="write the measurements to this JSON")
    args = parser.parse_args(argv)
    texts = read_texts(args.texts, args.text_column, args.num_texts)
    results = [measure(folder, texts) for folder in args.models]
    print("| model | gate | max abs | max kurtosis | FFN Wo max abs | MLM loss fp32 | W8A8 | increase |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['model']} | {'on' if r['attention_gate'] else 'off'} | {r['max_abs']:.1f} | {r['max_kurtosis']:.0f} "
              f"| {r['by_role']['mlp.Wo']['max_abs']:.1f} | {r['mlm_loss_fp32']:.4f} | {r['mlm_loss_w8a8']:.4f} "
              f"| {r['w8a8_loss_increase']:+.4f} |")
    if args.output:
        args.output.write_text(json.dumps({"texts": args.texts, "num_texts": len(texts), "models": results}, indent=2))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
