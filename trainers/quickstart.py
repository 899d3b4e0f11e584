"""The README's main job end to end on the repo's own data, in two parts.

The pipeline and its speed, on a tiny BriskBERT pretrained from scratch for a minute: pretrain it on real text with
the pretraining launcher, run it on real sentences (only the real tokens), and reload the saved folder in a fresh
interpreter that has never imported BriskBERT (`AutoModel.from_pretrained(..., trust_remote_code=True)` alone). A
minute of pretraining teaches it word frequencies, not a language, so its guesses are not shown: it is there to show
the pipeline and its speed.

A model worth judging, from a real pretrained BERT: convert all-MiniLM-L6-v2 (shipped on PyPI; any BERT id or
folder works) exactly to BriskBERT, fine-tune and score it on SST-2 with the evaluation harness, write its model card
and export it to ONNX. Each launcher runs as a user starts it, in its own process (`python -m briskbert.scripts.<job>`).
The summary shows a fill-mask only from a model that has learned words: the converted BERT's, when its checkpoint
has an MLM head (`--base_model` with a BertForMaskedLM). all-MiniLM-L6-v2 has none.

    run_quickstart(parse_config(QuickstartConfig, ["--config", "quickstart"]))     # what scripts/quickstart.py runs
"""

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

import briskbert  # noqa: F401  (registers BriskBERT with the Auto classes)

from .hub.fresh_process import run_without_briskbert
from .hub.model_card import find_records, render_card
from .inference.fill_mask import fill_mask_folder
from .resources import SHIPPED_BERT, base_bert, data_path, read_sentences, recipe_path


@dataclass
class QuickstartConfig:
    pretrain_recipe: str = "tiny-cpu"  # a bundled recipe's name or a YAML path
    pretrain_steps: int = 60
    sentences: str = "data/glue/sst2/validation.jsonl"
    num_sentences: int = 16
    base_model: str | None = None  # a transformers BERT id or folder; None: the shipped all-MiniLM-L6-v2
    finetune_task: str = "sst2"
    # one epoch of data/'s 8,000 training rows at batch 32: the setting that generalises (docs/finetuning-results.md)
    finetune_steps: int = 250
    finetune_learning_rate: float = 1e-4
    finetune_max_seq_length: int = 128
    eval_samples: int = 0  # 0: every validation row (2,000)
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


def run_quickstart(config: QuickstartConfig) -> dict:
    """Every step of the quickstart; returns the fine-tuned scores. A step that fails stops it with its output."""
    output = Path(config.output_dir).resolve()

    # 1. pretrain, as a user would launch it (one process; `accelerate launch` gives the same for more)
    step([sys.executable, "-m", "briskbert.scripts.pretrain", "--config", str(recipe_path(config.pretrain_recipe)),
          "--output-dir", str(output / "pretrain"), "--max-steps", str(config.pretrain_steps)],
         f"pretraining a tiny BriskBERT from scratch with {config.pretrain_recipe} for {config.pretrain_steps} steps")
    summary = json.loads((output / "pretrain" / "summary.json").read_text())
    tiny = output / "pretrain" / "final"
    print(f"pretrained {summary['parameters'] / 1e6:.1f}M parameters on {summary['tokens_seen']:,} real tokens in "
          f"{summary['train_seconds']:.0f} s ({summary['tokens_per_s']:,.0f} tokens/s, packing efficiency "
          f"{summary['packing_efficiency']:.1%}); final eval MLM loss {summary['final_eval_loss']:.3f}")

    # 2. use it: real sentences in one padded batch; the encoder runs on the real tokens only
    tokenizer = AutoTokenizer.from_pretrained(tiny, trust_remote_code=True)
    model = AutoModelForMaskedLM.from_pretrained(tiny).eval()
    sentences = read_sentences(config.num_sentences, config.sentences)
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    real, slots = int(batch["attention_mask"].sum()), batch["attention_mask"].numel()
    with torch.no_grad():
        encoder = model.model(**batch)
        seconds = min(timed(lambda: model.model(**batch)) for _ in range(5))
    print(f"{len(sentences)} real SST-2 sentences: {real} real tokens in {slots} padded slots; the encoder ran on the "
          f"{real} only ({1 - real / slots:.0%} of the padded work skipped), in {seconds * 1e3:.1f} ms "
          f"({real / seconds:,.0f} real tokens/s)")

    # 3. reload the saved folder where briskbert cannot be imported: the weights' own code must suffice
    with tempfile.TemporaryDirectory() as scratch:
        inputs, outputs = Path(scratch) / "inputs.pt", Path(scratch) / "outputs.pt"
        torch.save(dict(batch), inputs)
        loaded_class = run_without_briskbert(
            RELOAD.format(args=f"{str(tiny)!r}, {str(inputs)!r}, {str(outputs)!r}"), cwd=Path(scratch)
        ).strip()
        reloaded = torch.load(outputs)
    difference = (reloaded["last_hidden_state"] - encoder.last_hidden_state).abs().max().item()
    print(f"fresh interpreter without briskbert loaded {loaded_class}; max abs difference {difference:.1e}")
    if difference > 1e-5:
        raise SystemExit("The reloaded model disagrees with the saved one: the saved code or weights are wrong.")

    # 4. a real pretrained BERT, converted exactly (the converter checks its outputs against the source's)
    source, bert_name = base_bert(config.base_model), config.base_model or "all-MiniLM-L6-v2"
    converted = output / "briskbert-from-bert"
    step([sys.executable, "-m", "briskbert.scripts.convert", "--from", "bert", "--source", source, "--output",
          str(converted), "--check"], f"converting the pretrained BERT {bert_name}")

    # 5. fine-tune and score it on a GLUE task with the evaluation harness
    results = output / "results.json"
    step([sys.executable, "-m", "briskbert.scripts.evaluate_model", "--model", str(converted), "--tasks",
          config.finetune_task, "--data-dir", data_path("data"), "--max-steps", str(config.finetune_steps),
          "--max-eval-samples", str(config.eval_samples), "--work-dir", str(output / "finetune"),
          "--output", str(results), "--", "--learning-rate", str(config.finetune_learning_rate),
          "--max-seq-length", str(config.finetune_max_seq_length)], f"fine-tuning it on {config.finetune_task}")
    scores = json.loads(results.read_text())["tasks"][config.finetune_task]
    accuracy, majority = scores["metrics"]["accuracy"]["mean"], majority_rate(scores["source"], scores["eval_examples"])

    # 6. its model card, rendered from the run's own records (the conversion, the scores)
    render_card(find_records(converted, results=results), "briskbert/briskbert-quickstart",
                base_model=config.base_model or SHIPPED_BERT).save(converted / "README.md")

    # 7. export for serving; the script checks onnxruntime against PyTorch on real sentences
    step([sys.executable, "-m", "briskbert.scripts.export", "--model", str(converted), "--format", "onnx",
          "--output", str(output / "briskbert.onnx")], "ONNX export")

    # 8. fill-mask from a model that has learned words: the converted BERT's, when its checkpoint had an MLM head
    # (BertForMaskedLM: the converter keeps it). all-MiniLM-L6-v2 has none, and the tiny model knows word frequencies
    converted_guesses = converted_fill_mask(converted)
    if converted_guesses is not None:
        fill_line = f"{PROBE!r} -> {converted_guesses} (BriskBERT converted from {bert_name}, its own MLM head)"
    else:
        fill_line = (f"none shown: {bert_name} has no MLM head, and the tiny model has learned word frequencies "
                     f"only; --base_model with a BertForMaskedLM checkpoint shows one")

    print(f"""
== summary
built:      a tiny BriskBERT pretrained from scratch ({summary['parameters'] / 1e6:.1f}M parameters, \
{summary['tokens_per_s']:,.0f} tokens/s; it shows the pipeline and the speed)
            and BriskBERT converted from {bert_name}, fine-tuned on {config.finetune_task}
score:      {config.finetune_task} accuracy {accuracy:.3f} on {scores['eval_examples']} validation rows (always \
answering the most frequent label: {majority:.3f})
fill-mask:  {fill_line}
outputs:    {tiny}  the tiny model (weights, code, tokenizer)
            {converted}  the converted BERT and its model card
            {output / 'finetune'}  the fine-tuned {config.finetune_task} runs
            {results}  the scores;  {output / 'briskbert.onnx'}  the ONNX export
quickstart OK""")
    return json.loads(results.read_text())


PROBE = "the people of the united [MASK] of america ."


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def converted_fill_mask(folder: Path) -> list[str] | None:
    """The converted BERT's top guesses for PROBE, or None when its checkpoint had no MLM head to convert."""
    if "BriskBertForMaskedLM" not in json.loads((folder / "config.json").read_text()).get("architectures", []):
        return None
    return fill_mask_folder(folder, [PROBE])[PROBE]


def majority_rate(source: str, rows: int) -> float:
    """The accuracy of always answering the most frequent label, on the first `rows` rows of a JSON Lines file."""
    with open(source, encoding="utf-8") as handle:
        labels = [json.loads(line)["label"] for _, line in zip(range(rows), handle)]
    return max(labels.count(label) for label in set(labels)) / len(labels)


def step(command: list[str], what: str) -> None:
    print(f"== {what}", flush=True)
    if subprocess.run(command, stdin=subprocess.DEVNULL).returncode != 0:
        raise SystemExit(f"{what} failed; its output is above.")
