"""briskbert-embed against sentence-transformers: `briskbert-benchmark --compare embed`.

The same real sentences (every text column of the GLUE tasks' validation files, num_batches x batch_size of them)
are embedded by `SentenceTransformer.encode` on the original all-MiniLM-L6-v2 (batch 32, length-sorted by
sentence-transformers itself) and by the embedding job on its BriskBERT conversion, fp32 and int8, interleaved in
this process. Reported: seconds, the ratio to sentence-transformers, and the cosine of each row to its embedding.
"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..conversion.convert import convert
from ..inference.embed import EmbedConfig, embed_corpus
from ..measuring import time_interleaved
from .contenders import MiniLMComparison
from .records import write_record


def compare_embed(args) -> dict:
    from sentence_transformers import SentenceTransformer

    minilm = MiniLMComparison.load(args)
    source, tasks = minilm.source, minilm.tasks
    texts = minilm.sentences(args.num_batches * args.batch_size)
    with tempfile.TemporaryDirectory(prefix="briskbert-embed-bench-") as temporary:
        work = Path(temporary)
        folder = work / "briskbert-minilm"
        convert("bert", str(source), folder)
        corpus = work / "corpus.jsonl"
        corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        original = SentenceTransformer(str(source), device="cpu")
        print(f"embedding job vs sentence-transformers on all-MiniLM-L6-v2: {len(texts)} real sentences "
              f"({','.join(tasks)}), threads={torch.get_num_threads()}")

        def st_encode():
            return original.encode(texts, batch_size=32)

        def job(dtype):
            def run():
                output = work / f"{dtype}.npy"
                embed_corpus(EmbedConfig(model=str(folder), input=str(corpus), output=str(output), dtype=dtype,
                                         progress=False))
                return np.load(output)
            return run

        contenders = {"sentence-transformers encode (original)": st_encode, "briskbert-embed fp32": job("fp32"),
                      "briskbert-embed int8": job("int8")}
        results = {name: run() for name, run in contenders.items()}  # warm-up, and the embeddings scored
        timings = time_interleaved(contenders, args.repeats)
    reference = results["sentence-transformers encode (original)"]
    base = timings["sentence-transformers encode (original)"].median
    cpus = os.cpu_count() or 1
    rows = []
    for name in contenders:
        got = results[name]
        cosine = (got * reference).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(reference, axis=-1)
        median = timings[name].median
        rows.append({"model": name, "seconds_median": median, "ratio_vs_sentence_transformers": base / median,
                     "mean_cosine": float(cosine.mean()), "min_cosine": float(cosine.min()),
                     "seconds_all": timings[name].seconds, "steal_fraction": timings[name].steal_fraction(cpus)})
    print(f"| {'run':40} | seconds | x sentence-transformers | mean cos | min cos |\n|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['model']:40} | {row['seconds_median']:.2f} | {row['ratio_vs_sentence_transformers']:.2f} | "
              f"{row['mean_cosine']:.6f} | {row['min_cosine']:.6f} |")
    meta = {"sentences": len(texts), "tasks": tasks, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "repeats": args.repeats}
    return write_record(args.output, "outputs/benchmark_embed.json", meta, rows)
