"""Which int8 method keeps a real BERT's accuracy, and at what speed: `briskbert-benchmark --compare int8`.

On the real all-MiniLM-L6-v2 converted to BriskBERT, every method in `quantize.METHODS` embeds the same real
sentences (length-sorted batches, as sentence-transformers batches them) and is scored against the fp32 model:
mean and min cosine of the normalised mean-pooled embeddings. All of them, fp32, and transformers' BertModel with
and without torch.ao dynamic int8 (what a CPU user reaches for first) are timed interleaved in this process. It
also prints, per Linear of the fp32 model, the activation statistics that pick the method: max |x|, kurtosis and
the ratio of the largest channel range to the median one.
"""

import importlib.util
import os
import tempfile
import warnings
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from ..conversion.export import INPUT_NAMES, export_onnx
from ..inference.embed import pool
from ..inference.int8_export import export_int8_graph
from ..inference.onnx_encoder import OnnxEncoder
from ..inference.quantize import METHODS, accumulation_name, encoder_linears, int16_pairs, native_weight_bits, quantize
from ..measuring import time_interleaved
from .contenders import MiniLMComparison
from .records import write_record


def sorted_batches(tokenizer, texts, batch_size, max_length):
    order = sorted(range(len(texts)), key=lambda i: len(tokenizer(texts[i])["input_ids"]))
    return [(order[i : i + batch_size],
             tokenizer([texts[j] for j in order[i : i + batch_size]], padding=True, truncation=True,
                       max_length=max_length, return_tensors="pt")) for i in range(0, len(order), batch_size)]


def embed(model, batches, count, pooled):
    out = None
    with torch.inference_mode():
        for rows, batch in batches:
            output = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            vectors = pooled(output, batch["attention_mask"])
            out = torch.empty(count, vectors.shape[-1]) if out is None else out
            out[rows] = F.normalize(vectors.float(), dim=-1)
    return out


def briskbert_pooled(output, mask):
    return output.pooler_output


def bert_pooled(output, mask):
    return pool(output.last_hidden_state, mask, "mean")  # the embedding job's mean pooling over real tokens


@torch.inference_mode()
def activation_statistics(model, batches) -> list[dict]:
    """Per Linear of the encoder layers: max |x|, kurtosis of its inputs, and max/median of per-channel ranges."""
    linears = encoder_linears(model)
    seen = {name: [] for name in linears}

    def record(name):
        def hook(module, inputs, output):
            seen[name].append(inputs[0].detach().reshape(-1, module.in_features).float())
        return hook

    handles = [linear.register_forward_hook(record(name)) for name, linear in linears.items()]
    try:
        for _, batch in batches:
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        for handle in handles:
            handle.remove()
    rows = []
    for name, chunks in seen.items():
        x = torch.cat(chunks)
        standardized = (x - x.mean()) / x.std()
        channel_range = x.abs().amax(0)
        rows.append({"linear": name, "max_abs": x.abs().max().item(), "kurtosis": standardized.pow(4).mean().item(),
                     "channel_max_over_median": (channel_range.max() / channel_range.median()).item()})
    return rows


class OnnxRunner:
    """briskbert.OnnxEncoder called as the models here are: its last_hidden_state, mean-pooled as the BertModel's."""

    def __init__(self, encoder):
        self.encoder = encoder

    def __call__(self, input_ids, attention_mask):
        return SimpleNamespace(last_hidden_state=self.encoder(input_ids, attention_mask))


def other_weight_bits() -> int:
    """The weight bits the other kind of CPU quantizes to (7 where this one takes 8, and the reverse): its row shows
    what a model quantized there gives here."""
    return {8: 7, 7: 8}[native_weight_bits()]


def onnx_contenders(fp32, int8_models: dict, batches) -> dict:
    """The converted model exported as briskbert-export writes it, fp32 and `--int8`: each `quantize`d model of
    `int8_models` (the default recipe with this CPU's weight bits and the other kind's, by row-name suffix) as its
    int8 graph, each run by briskbert.OnnxEncoder; the graphs live in the sessions once loaded."""
    _, first = batches[0]
    example = {name: first.get(name, torch.zeros_like(first["input_ids"])) for name in INPUT_NAMES}
    contenders = {}
    with tempfile.TemporaryDirectory(prefix="briskbert-int8-onnx-") as folder:
        fp32_path = Path(folder) / "fp32.onnx"
        export_onnx(fp32, example, fp32_path)
        contenders["BriskBERT onnxruntime fp32"] = (OnnxRunner(OnnxEncoder(fp32_path)), bert_pooled)
        for suffix, int8 in int8_models.items():
            int8_path = Path(folder) / f"int8{suffix.strip()}.onnx"
            export_int8_graph(int8, example, int8_path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an 8-bit graph where products add in int16 pairs: the row shows it
                encoder = OnnxEncoder(int8_path)
            contenders[f"BriskBERT onnxruntime int8 smooth-outliers{suffix}"] = (OnnxRunner(encoder), bert_pooled)
    return contenders


def compare_int8(args) -> dict:
    from torch.ao.quantization import quantize_dynamic

    minilm = MiniLMComparison.load(args)
    tasks, tokenizer = minilm.tasks, minilm.tokenizer
    texts = minilm.sentences(args.num_batches * args.batch_size)
    batches = sorted_batches(tokenizer, texts, args.batch_size, args.max_seq_length)
    tokens = sum(int(batch["attention_mask"].sum()) for _, batch in batches)
    fp32, bert = minilm.converted(), minilm.original()
    print(f"int8 methods on all-MiniLM-L6-v2: {len(texts)} real sentences ({','.join(tasks)}), {tokens} tokens, "
          f"threads={torch.get_num_threads()}; calibration: quantize()'s default (256 bundled SST-2 sentences); "
          f"int8 products add in {accumulation_name(int16_pairs())} here, so weights take "
          f"{native_weight_bits()} bits")
    models = {"BriskBERT fp32": (fp32, briskbert_pooled), "HF BertModel sdpa fp32": (bert, bert_pooled)}
    for method in METHODS:
        models[f"BriskBERT int8 {method}"] = (quantize(fp32, method, tokenizer=tokenizer), briskbert_pooled)
    other_bits = other_weight_bits()
    other = f" ({other_bits}-bit weights)"
    models[f"BriskBERT int8 smooth-outliers{other}"] = (
        quantize(fp32, tokenizer=tokenizer, weight_bits=other_bits), briskbert_pooled)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's migration notice
        models["HF BertModel torch.ao dynamic int8"] = (quantize_dynamic(bert, {nn.Linear}, dtype=torch.qint8),
                                                         bert_pooled)
    if importlib.util.find_spec("onnxruntime") is not None:
        smooth_outliers = {suffix: models[f"BriskBERT int8 smooth-outliers{suffix}"][0] for suffix in ("", other)}
        models.update(onnx_contenders(fp32, smooth_outliers, batches))
    else:
        print("  onnxruntime rows skipped: onnxruntime is not installed (pip install 'briskbert[export]')")
    reference = embed(fp32, batches, len(texts), briskbert_pooled)
    for name, (model, pooled) in models.items():  # warm-up
        embed(model, batches[:2], len(texts), pooled)
    timings = time_interleaved({name: partial(embed, model, batches, len(texts), pooled)
                                for name, (model, pooled) in models.items()}, args.repeats)
    base = timings["HF BertModel sdpa fp32"].median
    cpus = os.cpu_count() or 1
    rows = []
    for name, (model, pooled) in models.items():
        cosine = (embed(model, batches, len(texts), pooled) * reference).sum(-1)
        median = timings[name].median
        rows.append({"model": name, "mean_cosine": cosine.mean().item(), "min_cosine": cosine.min().item(),
                     "tokens_per_s": tokens / median, "ratio_vs_bert": base / median,
                     "seconds_all": timings[name].seconds, "steal_fraction": timings[name].steal_fraction(cpus)})
    statistics_rows = activation_statistics(fp32, batches[:: max(1, len(batches) // 12)])
    print(f"| {'model':40} | mean cos | min cos | tok/s | x HF BERT |\n|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['model']:40} | {row['mean_cosine']:.5f} | {row['min_cosine']:.5f} | "
              f"{row['tokens_per_s']:,.0f} | {row['ratio_vs_bert']:.2f} |")
    print("\n| linear | max abs | kurtosis | channel max/median |\n|---|---:|---:|---:|")
    for row in statistics_rows:
        print(f"| {row['linear']} | {row['max_abs']:.1f} | {row['kurtosis']:.0f} | "
              f"{row['channel_max_over_median']:.1f} |")
    meta = {"sentences": len(texts), "tokens": tokens, "tasks": tasks, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "repeats": args.repeats, "batch_size": args.batch_size,
            "max_seq_length": args.max_seq_length, "int8_accumulation": accumulation_name(int16_pairs()),
            "weight_bits": native_weight_bits(),
            "fbgemm_instructions": os.environ.get("FBGEMM_ENABLE_INSTRUCTIONS", "from the CPU")}
    return write_record(args.output, "outputs/benchmark_int8.json", meta, rows,
                        activation_statistics=statistics_rows)
