"""attention_gate, gated attention against int8-hostile outlier activations: off by default and in converted models;
on, every attention backend gives the same outputs and gradients and the gate itself learns, the folder reloads,
int8 keeps the small gate in fp32, and a pretraining run with the gate is measured by the outlier tool."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from launchers import console_script

from briskbert import BriskBertConfig, BriskBertForMaskedLM, quantize

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gated(tokenizer):
    torch.manual_seed(0)
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                         attention_gate=True, hidden_dropout_prob=0.0)
    return BriskBertForMaskedLM(config)


def test_off_by_default_and_one_small_linear_per_layer_when_on(gated, tokenizer):
    plain = BriskBertForMaskedLM(BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer)))
    assert not plain.config.attention_gate
    assert not [name for name, _ in plain.named_parameters() if ".gate." in name]
    gates = {name: p.shape for name, p in gated.named_parameters() if ".gate." in name}
    heads, hidden = gated.config.num_attention_heads, gated.config.hidden_size
    assert gates == {f"model.layers.{i}.attention.gate.{kind}": torch.Size([heads, hidden] if kind == "weight" else [heads])
                     for i in range(gated.config.num_hidden_layers) for kind in ("weight", "bias")}


def test_every_backend_gives_the_same_gated_outputs_and_the_gate_learns(gated, make_batch, sentences):
    batch = make_batch(sentences[:6])
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    losses, gate_grads = {}, {}
    for implementation in ("eager", "sdpa"):
        gated.set_attn_implementation(implementation)
        gated.zero_grad(set_to_none=True)
        out = gated(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
        out.loss.backward()
        losses[implementation] = out.loss.detach()
        gate_grads[implementation] = gated.model.layers[0].attention.gate.weight.grad.clone()
    gated.set_attn_implementation("flex_attention")  # forward only on a CPU (torch has no CPU flex backward)
    with torch.no_grad():
        losses["flex_attention"] = gated(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                         labels=labels).loss
    gated.set_attn_implementation("sdpa")
    assert gate_grads["eager"].abs().sum() > 0
    torch.testing.assert_close(gate_grads["sdpa"], gate_grads["eager"], rtol=1e-4, atol=1e-6)
    for implementation in ("sdpa", "flex_attention"):
        torch.testing.assert_close(losses[implementation], losses["eager"], rtol=1e-5, atol=1e-5)


def test_gated_folder_reloads_and_int8_keeps_the_gate_in_fp32(gated, make_batch, sentences, tmp_path, tokenizer):
    gated.eval()
    batch = make_batch(sentences[:8])
    with torch.no_grad():
        expected = gated(**batch).logits
    gated.save_pretrained(tmp_path / "gated")
    reloaded = BriskBertForMaskedLM.from_pretrained(tmp_path / "gated").eval()
    assert reloaded.config.attention_gate
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, expected)
    int8 = quantize(reloaded, method="dynamic")
    assert type(int8.model.layers[0].attention.gate) is torch.nn.Linear
    assert type(int8.model.layers[0].attention.Wqkv).__name__ == "Int8Linear"
    gated.train()


def test_a_gated_pretraining_run_and_its_outlier_measurement(tmp_path, tiny_briskbert):
    run = tmp_path / "gated-run"
    command = [console_script("briskbert-pretrain"), "--config", "tiny-cpu", "--attention-gate", "true",
               "--max-steps", "3", "--eval-every", "3", "--save-every", "3", "--output-dir", str(run)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "final" / "config.json").read_text())["attention_gate"] is True
    report = tmp_path / "outliers.json"
    measured = subprocess.run(
        [sys.executable, "-m", "briskbert.trainers.speed.outliers", str(tiny_briskbert), str(run / "final"),
         "--texts", str(REPO / "data" / "corpus" / "en"), "--num-texts", "32", "--output", str(report)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert measured.returncode == 0, measured.stderr[-3000:]
    models = json.loads(report.read_text())["models"]
    assert [m["attention_gate"] for m in models] == [False, True]
    for m in models:
        assert m["max_abs"] > 0 and m["max_kurtosis"] > 0 and m["masked_tokens"] > 50
        assert set(m["by_role"]) == {"attention.Wqkv", "attention.Wo", "mlp.Wi", "mlp.Wo"}
        assert m["w8a8_loss_increase"] == pytest.approx(m["mlm_loss_w8a8"] - m["mlm_loss_fp32"])
    assert "| on |" in measured.stdout and "| off |" in measured.stdout


def test_a_run_from_a_checkpoint_cannot_add_a_gate(tiny_briskbert):
    from briskbert.trainers.pretraining.loop import PretrainConfig, check

    with pytest.raises(SystemExit, match="attention_gate is a choice of a new BriskBERT"):
        check(PretrainConfig(init_from=str(tiny_briskbert), attention_gate=True))
