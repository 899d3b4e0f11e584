"""int8 BriskBERT on fbgemm's int16-pair kernels, the path of CPUs without VNNI (AVX2, or AVX-512 without VNNI).
test_quantize.py starts it with FBGEMM_ENABLE_INSTRUCTIONS=AVX2, which makes fbgemm run those kernels on a VNNI CPU
too, so every machine checks both paths; on an AVX2 CPU the variable changes nothing.

    FBGEMM_ENABLE_INSTRUCTIONS=AVX2 python tests/int16_pair_worker.py --model DIR --sentences S.json --output R.json

Writes R.json: whether fbgemm adds in int16 pairs here, full-range sums of 8-bit and 7-bit weights, and the mean
and min cosine against fp32 of the real MiniLM's embeddings quantized here (the default: 7-bit weights, 8-bit
activations) and quantized with 8-bit weights (as on a VNNI CPU: run here with 7-bit activations), with the warning
load_quantized gives for the latter.
"""

import argparse
import json
import warnings

import torch
from briskbert.trainers.inference.quantize import int16_pairs, load_quantized, quantize, save_quantized
from test_quantize import embeddings, full_range_int8
from transformers import AutoTokenizer

from briskbert import BriskBertModel


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--sentences", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, tokenizer = BriskBertModel.from_pretrained(args.model).eval(), AutoTokenizer.from_pretrained(args.model)
    texts = json.load(open(args.sentences))
    reference = embeddings(model, tokenizer, texts)
    result = {"int16_pairs": int16_pairs(), "full_range_error": {bits: full_range_int8(bits)[1] for bits in (8, 7)}}
    default = quantize(model, tokenizer=tokenizer)
    result["default_weight_bits"] = default.config.briskbert_int8["weight_bits"]
    cosine = (embeddings(default, tokenizer, texts) * reference).sum(-1)
    result["default"] = [cosine.mean().item(), cosine.min().item()]
    folder = f"{args.output}.8bit"
    save_quantized(quantize(model, tokenizer=tokenizer, weight_bits=8), folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eight_bit = load_quantized(folder)
    result["load_warnings"] = [str(w.message) for w in caught]
    cosine = (embeddings(eight_bit, tokenizer, texts) * reference).sum(-1)
    result["8bit_weights"] = [cosine.mean().item(), cosine.min().item()]
    json.dump(result, open(args.output, "w"), indent=1)


if __name__ == "__main__":
    main()
