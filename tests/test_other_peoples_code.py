"""BriskBERT through the code users bring instead of the project's launchers: PEFT with its own defaults, and
transformers' Trainer (with and without gradient checkpointing, and with a LoRA adapter) on a model loaded with
trust_remote_code in an interpreter that has no briskbert."""

import json

import pytest
import torch
from peft import (
    AutoPeftModelForQuestionAnswering,
    AutoPeftModelForSequenceClassification,
    AutoPeftModelForTokenClassification,
    LoraConfig,
    PeftModel,
    get_peft_model,
)
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from briskbert import BriskBertPreTrainedModel

# The plain-PEFT LoRA config the README and model cards give: PEFT has no default targets for model_type
# "briskbert", so they are named; everything else (modules_to_save by task type) is PEFT's default.
LORA_TARGETS = list(BriskBertPreTrainedModel.default_lora_target_modules)

FLOWS = {  # task type -> (Auto class, PEFT's Auto class, labels for a batch of `input_ids`)
    "SEQ_CLS": (AutoModelForSequenceClassification, AutoPeftModelForSequenceClassification,
                lambda ids: {"labels": torch.arange(ids.shape[0]) % 2}),
    "TOKEN_CLS": (AutoModelForTokenClassification, AutoPeftModelForTokenClassification,
                  lambda ids: {"labels": ids % 2}),
    "QUESTION_ANS": (AutoModelForQuestionAnswering, AutoPeftModelForQuestionAnswering,
                     lambda ids: {"start_positions": torch.ones(ids.shape[0], dtype=torch.long),
                                  "end_positions": torch.full((ids.shape[0],), 2)}),
}


def train_steps(model, batch, labels, steps=5):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        model(**batch, **labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        out = model(**batch)
    return out.logits if "logits" in out else torch.stack([out.start_logits, out.end_logits])


@pytest.mark.parametrize(
    "task_type, target_modules",
    [("SEQ_CLS", LORA_TARGETS), ("SEQ_CLS", "all-linear"), ("TOKEN_CLS", LORA_TARGETS), ("QUESTION_ANS", LORA_TARGETS)],
    ids=["seq-cls", "seq-cls-all-linear", "token-cls", "qa"],
)
def test_an_adapter_saved_with_peft_defaults_reproduces_the_model(tiny_briskbert, make_batch, sentences, tmp_path,
                                                                   task_type, target_modules):
    auto_class, auto_peft_class, make_labels = FLOWS[task_type]
    batch = make_batch(sentences[:6])
    # an MLM checkpoint: every head module (BriskBERT's pooler included) starts newly initialised
    model = get_peft_model(auto_class.from_pretrained(tiny_briskbert),
                           LoraConfig(task_type=task_type, target_modules=target_modules))
    trained = logits(train_steps(model, batch, make_labels(batch["input_ids"])), batch)
    model.save_pretrained(tmp_path / "adapter")

    torch.manual_seed(1)  # the reloaded base draws other random head weights; the adapter folder must replace them
    reloaded = auto_peft_class.from_pretrained(tmp_path / "adapter").eval()
    assert (logits(reloaded, batch) - trained).abs().max() <= 1e-6
    if task_type == "SEQ_CLS":
        torch.manual_seed(2)
        by_hand = PeftModel.from_pretrained(auto_class.from_pretrained(tiny_briskbert), tmp_path / "adapter").eval()
        assert (logits(by_hand, batch) - trained).abs().max() <= 1e-6
        saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
        assert "classifier" in saved["modules_to_save"]


TRAINER_ROUND_TRIP = r"""
import json, torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainingArguments)

rows = [json.loads(line) for line in open({data!r}, encoding="utf-8")][:48]
tokenizer = AutoTokenizer.from_pretrained({model!r}, trust_remote_code=True)
features = [dict(tokenizer(row["sentence"], truncation=True, max_length=64), labels=row["label"]) for row in rows]
check = DataCollatorWithPadding(tokenizer)([{{k: v for k, v in f.items() if k != "labels"}} for f in features[:12]])
report = {{}}
for checkpointing in (False, True):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained({model!r}, trust_remote_code=True, num_labels=2)
    assert "briskbert" not in type(model).__module__.split(".")[0]  # the Hub's copy of the code, not an install
    args = TrainingArguments(output_dir={out!r} + f"/run-{{checkpointing}}", max_steps=4, per_device_train_batch_size=12,
                             learning_rate=5e-3, gradient_checkpointing=checkpointing, report_to=[], use_cpu=True,
                             save_strategy="no", logging_steps=1, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    trainer.save_model(args.output_dir + "/final")
    model.eval()
    with torch.no_grad():
        expected = model(**check).logits
    reloaded = AutoModelForSequenceClassification.from_pretrained(args.output_dir + "/final", trust_remote_code=True)
    with torch.no_grad():
        actual = reloaded.eval()(**check).logits
    report[str(checkpointing)] = {{"losses": losses, "difference": (actual - expected).abs().max().item(),
                                   "checkpointing": model.is_gradient_checkpointing}}

# a LoRA adapter trained by the Trainer with PEFT's defaults, reloaded by PEFT's Auto class
from peft import AutoPeftModelForSequenceClassification, LoraConfig, get_peft_model

torch.manual_seed(0)
base = AutoModelForSequenceClassification.from_pretrained({model!r}, trust_remote_code=True, num_labels=2)
model = get_peft_model(base, LoraConfig(task_type="SEQ_CLS", target_modules=["Wqkv", "Wo", "Wi"]))
args = TrainingArguments(output_dir={out!r} + "/lora", max_steps=4, per_device_train_batch_size=12, learning_rate=5e-3,
                         report_to=[], use_cpu=True, save_strategy="no", seed=0)
Trainer(model=model, args=args, train_dataset=features, data_collator=DataCollatorWithPadding(tokenizer)).train()
model.save_pretrained(args.output_dir + "/adapter")
model.eval()
with torch.no_grad():
    expected = model(**check).logits
torch.manual_seed(1)
reloaded = AutoPeftModelForSequenceClassification.from_pretrained(args.output_dir + "/adapter", trust_remote_code=True)
with torch.no_grad():
    report["lora"] = {{"difference": (reloaded.eval()(**check).logits - expected).abs().max().item()}}
print(json.dumps(report))
"""


def test_trainer_and_peft_train_save_and_reload_a_remote_code_model(tiny_briskbert, data_dir, tmp_path,
                                                                           run_fresh_python):
    code = TRAINER_ROUND_TRIP.format(data=str(data_dir / "glue/sst2/train.jsonl"), model=str(tiny_briskbert),
                                     out=str(tmp_path))
    report = json.loads(run_fresh_python(code, tmp_path).strip().splitlines()[-1])
    for checkpointing in ("False", "True"):
        run = report[checkpointing]
        assert run["checkpointing"] is (checkpointing == "True")
        assert len(run["losses"]) == 4 and all(loss == loss and loss > 0 for loss in run["losses"])
        assert run["difference"] <= 1e-6
    # gradient checkpointing recomputes the same forward: the same losses step for step
    assert report["False"]["losses"] == pytest.approx(report["True"]["losses"], rel=1e-4)
    assert report["lora"]["difference"] <= 1e-6
