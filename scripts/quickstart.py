"""Quickstart, the README's main job end to end on the repo's own data: pretrain a tiny BriskBERT on real
text with the pretraining launcher, run it on real sentences, reload the saved folder in a fresh interpreter
that has never imported BriskBERT (through `AutoModel.from_pretrained(..., trust_remote_code=True)` alone),
fine-tune and score it on SST-2 with the evaluation harness, write its model card, and export it to ONNX.

    python scripts/quickstart.py                                  # hub_configs/quickstart.yaml
    python scripts/quickstart.py --pretrain_steps 200             # any QuickstartConfig field
"""

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

import briskbert  # noqa: F401  (registers BriskBERT with the Auto classes)
from briskbert.trainers.config import parse_config
from briskbert.trainers.fresh_process import run_without_briskbert
from briskbert.trainers.model_card import find_records, render_card

REPO = Path(__file__).resolve().parent.parent


@dataclass
class QuickstartConfig:
    pretrain_recipe: str = "hub_configs/tiny-cpu.yaml"
    pretrain_steps: int = 60
    sentences: str = "data/glue/sst2/validation.jsonl"
    num_sentences: int = 16
    finetune_task: str = "sst2"
    finetune_steps: int = 40
    eval_samples: int = 500
    output_dir: str = "outputs/quickstart"


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
    output = Path(config.output_dir).resolve()

    # 1. pretrain, as a user would launch it (one process; `accelerate launch` gives the same for more)
    step([sys.executable, str(REPO / "scripts" / "pretrain.py"), "--config", str(REPO / config.pretrain_recipe),
          "--output-dir", str(output / "pretrain"), "--max-steps", str(config.pretrain_steps)],
         f"pretraining with {config.pretrain_recipe} for {config.pretrain_steps} steps")
    summary = json.loads((output / "pretrain" / "summary.json").read_text())
    folder = output / "pretrain" / "final"
    print(f"pretrained {summary['parameters'] / 1e6:.1f}M parameters on {summary['tokens_seen']:,} real tokens in "
          f"{summary['train_seconds']:.0f} s ({summary['tokens_per_s']:,.0f} tokens/s, packing efficiency "
          f"{summary['packing_efficiency']:.1%}); final eval MLM loss {summary['final_eval_loss']:.3f}")

    # 2. use it: real sentences in one padded batch; the encoder runs on the real tokens only
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    sentences = read_sentences(REPO / config.sentences, config.num_sentences)
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    real, slots = int(batch["attention_mask"].sum()), batch["attention_mask"].numel()
    with torch.no_grad():
        encoder = model.model(**batch)
        probe = tokenizer(["the people of the united [MASK] of america ."], return_tensors="pt")
        masked = probe["input_ids"][0].tolist().index(tokenizer.mask_token_id)
        guesses = model(**probe).logits[0, masked].topk(5).indices
    print(f"{len(sentences)} real SST-2 sentences: {real} real tokens in {slots} padded slots; the encoder ran on the "
          f"{real} only ({1 - real / slots:.0%} of the padded work skipped)")
    print(f"'the people of the united [MASK] of america .' -> {tokenizer.convert_ids_to_tokens(guesses)}")

    # 3. reload the saved folder where briskbert cannot be imported: the weights' own code must suffice
    with tempfile.TemporaryDirectory() as scratch:
        inputs, outputs = Path(scratch) / "inputs.pt", Path(scratch) / "outputs.pt"
        torch.save(dict(batch), inputs)
        loaded_class = run_without_briskbert(
            RELOAD.format(args=f"{str(folder)!r}, {str(inputs)!r}, {str(outputs)!r}"), cwd=Path(scratch)
        ).strip()
        reloaded = torch.load(outputs)
    difference = (reloaded["last_hidden_state"] - encoder.last_hidden_state).abs().max().item()
    print(f"fresh interpreter without briskbert loaded {loaded_class}; max abs difference {difference:.1e}")
    if difference > 1e-5:
        raise SystemExit("The reloaded model disagrees with the saved one: the saved code or weights are wrong.")

    # 4. fine-tune and score it on a GLUE task with the evaluation harness (a demo budget, not a result)
    results = output / "results.json"
    step([sys.executable, str(REPO / "scripts" / "evaluate.py"), "--model", str(folder), "--tasks",
          config.finetune_task, "--data-dir", str(REPO / "data"), "--max-steps", str(config.finetune_steps),
          "--max-eval-samples", str(config.eval_samples), "--work-dir", str(output / "finetune"),
          "--output", str(results)], "fine-tuning")

    # 5. its model card, rendered from the run's own records (summary.json, the scores)
    render_card(find_records(folder, results=results), "briskbert/briskbert-quickstart").save(folder / "README.md")

    # 6. export for serving; the script checks onnxruntime against PyTorch on real sentences
    step([sys.executable, str(REPO / "scripts" / "export.py"), "--model", str(folder), "--format", "onnx",
          "--output", str(output / "briskbert.onnx")], "ONNX export")
    print(f"saved to {folder}: {', '.join(sorted(p.name for p in folder.iterdir()))}")
    print("quickstart OK")


def step(command: list[str], what: str) -> None:
    print(f"== {what}", flush=True)
    if subprocess.run(command, cwd=REPO, stdin=subprocess.DEVNULL).returncode != 0:
        raise SystemExit(f"{what} failed; its output is above.")


if __name__ == "__main__":
    main()
