"""Export: the padded graph (trainers/conversion/export.py) equals the unpadded PyTorch model for every head, padded
rows included; briskbert-export writes ONNX that onnxruntime runs to the same outputs, and a torch.export program.

Tolerance: 1e-5 absolute on hidden states and embeddings; logits (|x| up to tens) 1e-5 absolute + 1e-5 relative.
"""


import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch.testing import assert_close

from briskbert import modeling
from briskbert.modeling import (
    HEADS,
    BriskBertConfig,
    BriskBertForMaskedLM,
    BriskBertForMultipleChoice,
    BriskBertForSequenceClassification,
    BriskBertModel,
)
from briskbert.trainers.conversion.export import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    PaddedBriskBert,
    export_model,
    load_briskbert,
    real_batch,
)

ATOL = RTOL = 1e-5
# every head of the registry but multiple choice, whose inputs have a choices dimension (tested on its own below)
SINGLE_SEQUENCE_HEADS = [getattr(modeling, head.name) for head in HEADS if head.name != "BriskBertForMultipleChoice"]


def build(model_class, tokenizer, **overrides):
    torch.manual_seed(0)
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer), num_labels=3, **overrides)
    return model_class(config).eval()


def model_outputs(model, batch):
    with torch.no_grad():
        out = model(**batch)
    return [getattr(out, name) for name in OUTPUT_NAMES[type(model).__name__]]


def wrapper_outputs(model, batch):
    with torch.no_grad():
        out = PaddedBriskBert(model)(*(batch[name] for name in INPUT_NAMES))
    return list(out) if isinstance(out, tuple) else [out]


def assert_outputs_equal(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        assert_close(a, e, rtol=RTOL, atol=ATOL)


@pytest.fixture(scope="module")
def batch(make_batch, sentences):
    return make_batch(sentences[:12])  # mixed lengths: most rows padded


@pytest.mark.parametrize("model_class", SINGLE_SEQUENCE_HEADS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("positions", ["alibi", "absolute"])
def test_padded_graph_equals_the_model_for_every_head(tokenizer, batch, model_class, positions):
    overrides = {"position_embedding_type": "absolute", "mlp_type": "mlp"} if positions == "absolute" else {}
    model = build(model_class, tokenizer, **overrides)
    assert_outputs_equal(wrapper_outputs(model, batch), model_outputs(model, batch))


def test_padded_graph_mean_pooling_and_multiple_choice(tokenizer, make_batch, sentences):
    model = build(BriskBertForSequenceClassification, tokenizer, classifier_pooling="mean")
    batch = make_batch(sentences[:12])
    assert_outputs_equal(wrapper_outputs(model, batch), model_outputs(model, batch))
    model = build(BriskBertForMultipleChoice, tokenizer)
    choices = {k: v.view(6, 2, -1) for k, v in batch.items()}
    assert_outputs_equal(wrapper_outputs(model, choices), model_outputs(model, choices))


@pytest.mark.parametrize("positions", ["alibi", "absolute"])
def test_padded_graph_handles_left_padding(tokenizer, sentences, positions):
    overrides = {"position_embedding_type": "absolute", "mlp_type": "mlp"} if positions == "absolute" else {}
    model = build(BriskBertForSequenceClassification, tokenizer, **overrides)
    tokenizer.padding_side = "left"
    try:
        batch = dict(tokenizer(sentences[:6], padding=True, return_tensors="pt"))
    finally:
        tokenizer.padding_side = "right"
    assert batch["attention_mask"][:, 0].eq(0).any(), "the batch should hold left-padded rows"
    assert_outputs_equal(wrapper_outputs(model, batch), model_outputs(model, batch))


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory, tokenizer):
    """A recipe (ALiBi, GLU) MLM and a BERT-like (absolute, plain MLP) encoder, saved as users save them."""
    folders = {}
    for name, model_class, overrides in [
        ("alibi-mlm", BriskBertForMaskedLM, {}),
        ("absolute-encoder", BriskBertModel, {"position_embedding_type": "absolute", "mlp_type": "mlp"}),
    ]:
        folder = tmp_path_factory.mktemp(name)
        build(model_class, tokenizer, **overrides).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[name] = folder
    return folders


def reference_batch(tokenizer, model):
    """A batch of another size and length than the export's example, with padded rows."""
    return real_batch(tokenizer, model, 10, 128)


@pytest.mark.parametrize("name", ["alibi-mlm", "absolute-encoder"])
def test_onnx_export_runs_in_onnxruntime_with_the_models_outputs(saved_models, tokenizer, tmp_path, name):
    path = tmp_path / "model.onnx"
    names, difference, _ = export_model(saved_models[name], "onnx", path)
    assert difference < 1e-4
    onnx.checker.check_model(str(path))
    model = load_briskbert(saved_models[name])
    assert names == OUTPUT_NAMES[type(model).__name__]
    batch = reference_batch(tokenizer, model)
    assert batch["attention_mask"].eq(0).any()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(INPUT_NAMES)
    names = OUTPUT_NAMES[type(model).__name__]
    outputs = session.run(list(names), {k: v.numpy() for k, v in batch.items()})
    assert_outputs_equal([torch.from_numpy(np.asarray(o)) for o in outputs], model_outputs(model, batch))


def test_torch_export_program_has_the_models_outputs(saved_models, tokenizer, tmp_path):
    path = tmp_path / "model.pt2"
    export_model(saved_models["alibi-mlm"], "torch-export", path)
    program = torch.export.load(path)
    model = load_briskbert(saved_models["alibi-mlm"])
    batch = reference_batch(tokenizer, model)
    with torch.no_grad():
        logits = program.module()(*(batch[name] for name in INPUT_NAMES))
    assert_outputs_equal([logits], model_outputs(model, batch))


def test_export_refuses_a_folder_that_is_not_briskbert(tmp_path, tokenizer):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(tmp_path)
    with pytest.raises(SystemExit, match="convert it first"):
        export_model(tmp_path, "onnx", tmp_path / "x.onnx")


def test_export_of_a_folder_without_tokenizer_says_how_to_add_one(tmp_path, tokenizer):
    build(BriskBertForMaskedLM, tokenizer).save_pretrained(tmp_path)  # weights and code, no tokenizer files
    with pytest.raises(SystemExit, match=r"has no tokenizer .*save_pretrained"):
        export_model(tmp_path, "onnx", tmp_path / "x.onnx")
