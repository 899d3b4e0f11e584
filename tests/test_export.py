"""Export: every BriskBERT head exports itself with `torch.export` (dynamic batch and sequence) and the graph equals
the unpadded PyTorch model on other shapes, right- and left-padded rows included; torch.onnx's dynamo path takes the
model itself; briskbert-export writes ONNX that onnxruntime runs to the same outputs, and a torch.export program.

Tolerance: 1e-5 absolute on hidden states and embeddings; logits (|x| up to tens) 1e-5 absolute + 1e-5 relative.
"""


import math

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from briskbert.modeling import HEADS, BriskBertConfig, BriskBertForMaskedLM, BriskBertModel
from briskbert.trainers.conversion.export import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    dynamic_shapes,
    export_model,
    load_briskbert,
    real_batch,
)
from torch.testing import assert_close

from briskbert import modeling

ATOL = RTOL = 1e-5
HEAD_CLASSES = [getattr(modeling, head.name) for head in HEADS]


def build(model_class, tokenizer, **overrides):
    torch.manual_seed(0)
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer), num_labels=3, **overrides)
    return model_class(config).eval()


def model_outputs(model, batch):
    with torch.no_grad():
        out = model(**batch)
    return [getattr(out, name) for name in OUTPUT_NAMES[type(model).__name__]]


def assert_outputs_equal(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        assert_close(a, e, rtol=RTOL, atol=ATOL)


def padded_batches(tokenizer, sentences, model_class):
    """Right- and left-padded rows of real sentences ([batch, 2 choices, seq] for multiple choice)."""
    batches = []
    for side in ("right", "left"):
        tokenizer.padding_side = side
        try:
            batch = dict(tokenizer(sentences, padding=True, return_tensors="pt"))
        finally:
            tokenizer.padding_side = "right"
        if model_class.__name__ == "BriskBertForMultipleChoice":
            batch = {k: v.view(len(sentences) // 2, 2, -1) for k, v in batch.items()}
        batches.append(batch)
    assert batches[1]["attention_mask"].flatten(0, -2)[:, 0].eq(0).any(), "the batch should hold left-padded rows"
    return batches


@pytest.mark.parametrize(
    "model_class, positions",
    [(cls, "alibi") for cls in HEAD_CLASSES]
    + [(modeling.BriskBertModel, "absolute"), (modeling.BriskBertForSequenceClassification, "absolute")],
    ids=lambda x: x if isinstance(x, str) else x.__name__,
)
def test_every_head_exports_itself_with_dynamic_shapes(tokenizer, sentences, model_class, positions):
    overrides = {"position_embedding_type": "absolute", "mlp_type": "mlp"} if positions == "absolute" else {}
    model = build(model_class, tokenizer, **overrides)
    example = padded_batches(tokenizer, sentences[:4], model_class)[0]
    shapes = dict(zip(INPUT_NAMES, dynamic_shapes(model_class.__name__)))
    program = torch.export.export(model, (), kwargs=example, dynamic_shapes={k: shapes[k] for k in example})
    for batch in padded_batches(tokenizer, sentences[4:14], model_class):  # another batch size and length
        with torch.no_grad():
            exported = program.module()(**batch)
        names = OUTPUT_NAMES[model_class.__name__]
        assert_outputs_equal([exported[name] for name in names], model_outputs(model, batch))


def test_torch_onnx_dynamo_export_of_the_model_itself_runs_in_onnxruntime(tokenizer, sentences, tmp_path):
    model = build(modeling.BriskBertForSequenceClassification, tokenizer)
    right, left = padded_batches(tokenizer, sentences[:4], type(model))
    args = (right["input_ids"], right["attention_mask"])
    free = {0: torch.export.Dim.DYNAMIC, 1: torch.export.Dim.DYNAMIC}
    torch.onnx.export(model, args, str(tmp_path / "model.onnx"), input_names=["input_ids", "attention_mask"],
                      output_names=["logits"], dynamic_shapes=(free, free), dynamo=True, external_data=False)
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in padded_batches(tokenizer, sentences[4:14], type(model)):
        inputs = {"input_ids": batch["input_ids"].numpy(), "attention_mask": batch["attention_mask"].numpy()}
        (logits,) = session.run(["logits"], inputs)
        with torch.no_grad():
            expected = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        assert_close(torch.from_numpy(logits), expected, rtol=RTOL, atol=ATOL)


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
        outputs = program.module()(*(batch[name] for name in INPUT_NAMES))
    assert_outputs_equal(list(outputs), model_outputs(model, batch))


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


# one head per kind of output: token-level hidden states, a pooled output, QA logits masked with the dtype's min
@pytest.mark.parametrize("model_class", [c for c in HEAD_CLASSES if c.__name__ in
                                         ("BriskBertModel", "BriskBertForSequenceClassification",
                                          "BriskBertForQuestionAnswering")], ids=lambda c: c.__name__)
def test_onnx_encoder_runs_the_export_in_length_groups_like_the_model(model_class, tokenizer, sentences, tmp_path):
    """briskbert.OnnxEncoder: called like the model on padded torch tensors, it returns the exported head's first
    output, equal to PyTorch on real tokens (1e-5), whatever micro-batches its token budget cuts."""
    import briskbert

    model = build(model_class, tokenizer)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    export_model(folder, "onnx", tmp_path / "model.onnx")
    batch = dict(tokenizer(sentences[:12], padding=True, return_tensors="pt"))
    expected = model_outputs(model, batch)[0]
    for budget in (64, 100_000):  # many micro-batches of similar length, then one
        encoder = briskbert.OnnxEncoder(tmp_path / "model.onnx", token_budget=budget)
        assert encoder.session.get_session_options().intra_op_num_threads == torch.get_num_threads()
        assert 0 < encoder.call_cost_tokens < math.inf  # measured on this session at start
        got = encoder(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        assert got.shape == expected.shape
        if encoder.token_level:
            real = batch["attention_mask"].bool()
            assert_close(got[real], expected[real], rtol=RTOL, atol=ATOL)
        else:
            assert_close(got, expected, rtol=RTOL, atol=ATOL)
    tokenizer.padding_side = "left"
    try:
        left = dict(tokenizer(sentences[:4], padding=True, return_tensors="pt"))
    finally:
        tokenizer.padding_side = "right"
    with pytest.raises(ValueError, match="right-padded"):
        encoder(left["input_ids"], left["attention_mask"])


def test_length_groups_cut_where_padding_plus_calls_cost_least():
    """OnnxEncoder's micro-batches: every row once, within the budgets, and the cheapest cuts (padded tokens plus one
    call's cost per micro-batch), checked against every way of cutting the sorted rows."""
    import itertools

    from briskbert.trainers.inference.onnx_encoder import length_groups

    def cost(groups, lengths, call_cost):
        return sum(len(g) * max(lengths[i] for i in g) + call_cost for g in groups)

    def fits(groups, lengths):  # at most 5 rows and 200 padded tokens, unless a row runs alone
        return all(len(g) <= 5 and (len(g) == 1 or len(g) * max(lengths[i] for i in g) <= 200) for g in groups)

    generator = torch.Generator().manual_seed(0)
    for trial in range(20):
        lengths = torch.randint(1, 60, (9,), generator=generator).tolist()
        call_cost = [0.0, 5.0, 13.0, 1000.0][trial % 4]
        groups = length_groups(lengths, call_cost, token_budget=200, max_batch_size=5)
        assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
        assert fits(groups, lengths)
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        cheapest = math.inf
        for cuts in itertools.product([False, True], repeat=len(order) - 1):
            candidate, current = [], [order[0]]
            for index, cut in zip(order[1:], cuts):
                if cut:
                    candidate.append(current)
                    current = []
                current.append(index)
            candidate.append(current)
            if fits(candidate, lengths):
                cheapest = min(cheapest, cost(candidate, lengths, call_cost))
        assert cost(groups, lengths, call_cost) == pytest.approx(cheapest)
    # nearly free calls: one micro-batch per distinct length, no padding at all
    lengths = [5, 3, 5, 9, 3, 3]
    groups = length_groups(lengths, 1e-6, token_budget=4096, max_batch_size=64)
    assert all(len({lengths[i] for i in g}) == 1 for g in groups) and len(groups) == 3


def test_onnxruntime_tools_import_in_any_order_and_leave_sys_path_as_it_was():
    """onnxruntime.quantization first (the int8 export), then onnxruntime.transformers.optimizer (the benchmark's
    fused HF BERT), in one fresh process: both import, and nothing of onnxruntime/transformers stays on sys.path."""
    import subprocess
    import sys

    code = """
import importlib.util, sys
from briskbert.trainers.inference.int8_export import onnxruntime_tools
before = list(sys.path)
with onnxruntime_tools():
    from onnxruntime.quantization import quantize_dynamic
with onnxruntime_tools():
    from onnxruntime.transformers.optimizer import optimize_model
assert sys.path == before, set(sys.path) - set(before)
assert importlib.util.find_spec("benchmark") is None
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
