"""Quickstart: build a BriskBERT, run it on real sentences, save it with its code, and reload it in a
fresh interpreter that has never imported BriskBERT, through `AutoModel.from_pretrained(...,
trust_remote_code=True)` alone.

    python scripts/quickstart.py                                  # hub_configs/quickstart.yaml
    python scripts/quickstart.py --config hub_configs/quickstart.yaml --preset small
"""

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import ModelCard, ModelCardData
from transformers import AutoTokenizer

from briskbert import BriskBertConfig, BriskBertModel
from briskbert.trainers.config import parse_config
from briskbert.trainers.fresh_process import run_without_briskbert

REPO = Path(__file__).resolve().parent.parent


@dataclass
class QuickstartConfig:
    preset: str = "mini"
    tokenizer: str = "data/tokenizer"
    sentences: str = "data/glue/sst2/validation.jsonl"
    num_sentences: int = 16
    output_dir: str = "outputs/quickstart"
    seed: int = 0


RELOAD = """
import torch
from transformers import AutoModel
folder, inputs, outputs = {args}
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
with torch.no_grad():
    out = model(**torch.load(inputs))
torch.save({{"last_hidden_state": out.last_hidden_state, "pooler_output": out.pooler_output}}, outputs)
print(type(model).__module__ + "." + type(model).__name__)
"""


def read_sentences(path: Path, count: int) -> list[str]:
    with path.open() as handle:
        rows = [json.loads(line) for _, line in zip(range(count), handle)]
    if not rows or "sentence" not in rows[0]:
        raise SystemExit(f"{path} must be JSON Lines with a 'sentence' column (like data/glue/sst2).")
    return [row["sentence"] for row in rows]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not any(a == "--config" or a.startswith("--config=") for a in argv):
        argv = ["--config", str(REPO / "hub_configs" / "quickstart.yaml"), *argv]
    config = parse_config(QuickstartConfig, argv)
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(REPO / config.tokenizer)
    sentences = read_sentences(REPO / config.sentences, config.num_sentences)

    model_config = BriskBertConfig.from_preset(config.preset, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    model = BriskBertModel(model_config).eval()
    print(
        f"BriskBERT-{config.preset}: {model_config.num_hidden_layers} layers x {model_config.hidden_size} hidden, "
        f"{model.num_parameters() / 1e6:.1f}M parameters, vocabulary {len(tokenizer)} -> {model_config.vocab_size} "
        f"(multiple of 64), attention {model.config._attn_implementation}"
    )

    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    real, slots = int(batch["attention_mask"].sum()), batch["attention_mask"].numel()
    with torch.no_grad():
        out = model(**batch)
    print(
        f"{len(sentences)} real SST-2 sentences: {real} real tokens in {slots} padded slots; the encoder ran on "
        f"the {real} only ({1 - real / slots:.0%} of the padded work skipped)"
    )
    print(f"last_hidden_state {tuple(out.last_hidden_state.shape)}, sentence embeddings {tuple(out.pooler_output.shape)}")

    folder = REPO / config.output_dir / f"briskbert-{config.preset}"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_card(model, folder)
    print(f"saved to {folder}: {', '.join(sorted(p.name for p in folder.iterdir()))}")

    with tempfile.TemporaryDirectory() as scratch:
        inputs, outputs = Path(scratch) / "inputs.pt", Path(scratch) / "outputs.pt"
        torch.save(dict(batch), inputs)
        loaded_class = run_without_briskbert(
            RELOAD.format(args=f"{str(folder)!r}, {str(inputs)!r}, {str(outputs)!r}"), cwd=Path(scratch)
        ).strip()
        reloaded = torch.load(outputs)
    difference = max(
        (reloaded[key] - getattr(out, key)).abs().max().item() for key in ("last_hidden_state", "pooler_output")
    )
    print(f"fresh interpreter without briskbert loaded {loaded_class}; max abs difference {difference:.1e}")
    if difference > 1e-5:
        raise SystemExit("The reloaded model disagrees with the saved one: the saved code or weights are wrong.")
    print("quickstart OK")


def write_card(model, folder: Path):
    config = model.config
    card_data = ModelCardData(library_name="transformers", license="apache-2.0", tags=["briskbert", "fill-mask"])
    card = ModelCard.from_template(
        card_data,
        template_path=str(REPO / "model_cards" / "briskbert.md"),
        model_name=folder.name,
        repo_id=str(folder),
        num_hidden_layers=config.num_hidden_layers,
        hidden_size=config.hidden_size,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        vocab_size=config.vocab_size,
        num_parameters=f"{model.num_parameters() / 1e6:.1f}M",
        training_state="randomly initialised (quickstart); not pretrained",
    )
    card.save(folder / "README.md")


if __name__ == "__main__":
    main()
