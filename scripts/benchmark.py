"""Side-by-side throughput of BriskBERT against transformers' BertModel and ModernBertModel, in one process on the
same real GLUE batches; real tokens/s, the ratio to BertModel, MFU and peak memory per mode and precision.

    briskbert-benchmark                                 # small preset, CPU, fp32 + bf16, table + JSON
    briskbert-benchmark --device cuda                   # same on a GPU
    briskbert-benchmark --modes inference --dtypes fp32 --backends sdpa --baselines bert --no-memory --repeats 25
    briskbert-benchmark --compare minilm                # converted all-MiniLM-L6-v2 vs the original BertModel

Every BenchmarkConfig field (trainers/speed/benchmark.py, which says how each figure is measured) is a
flag; --config takes a recipe of them.
"""

from briskbert.trainers.config import parse_config
from briskbert.trainers.speed.benchmark import BenchmarkConfig, run_benchmark


def main(argv: list[str] | None = None) -> None:
    run_benchmark(parse_config(BenchmarkConfig, argv))


if __name__ == "__main__":
    main()
