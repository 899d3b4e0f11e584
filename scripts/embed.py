"""Embed a corpus: a text file or a dataset column in, one vector per row out, resumable.

    briskbert-embed --model my-embedder --input corpus.jsonl --column text --output corpus.npy
    briskbert-embed --model my-embedder --input notes.txt --output notes.parquet --dtype int8
    accelerate launch -m briskbert.scripts.embed --model my-embedder --input corpus.parquet --output corpus.npy

Rows are length-sorted into token-budget batches; shards land in <output>.parts/ as they finish, so a run started
again with the same arguments resumes, and the output appears only when complete. Every EmbedConfig field
(trainers/inference/embed.py, which says how each is used) is a flag; --config takes a recipe of them.
"""

from briskbert.trainers.config import parse_config
from briskbert.trainers.inference.embed import EmbedConfig, embed_corpus


def main(argv: list[str] | None = None) -> None:
    summary = embed_corpus(parse_config(EmbedConfig, argv))
    if "dim" in summary:  # the main process: the one that assembled the output
        speed = f"{summary['tokens_per_s']:,.0f} tokens/s" if summary["tokens_per_s"] else "nothing left to compute"
        print(f"embedded {summary['rows']} rows -> {summary['output']} ({summary['dim']} dims, {summary['dtype']}, "
              f"{summary['pooling']} pooling{', normalized' if summary['normalize'] else ''}; "
              f"{summary['resumed_shards']} of {summary['shards']} shards resumed; {speed})")


if __name__ == "__main__":
    main()
