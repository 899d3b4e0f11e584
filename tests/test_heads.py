"""Task heads: each trains on a tiny real batch, MLM sparse prediction and loss normalisation, weight init,
tied weights, and save -> load round trips through transformers' Auto classes with trust_remote_code."""

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import MODEL_CODE_FILES
from torch.testing import assert_close
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

import briskbert
from briskbert import (
    PRESETS,
    BriskBertConfig,
    BriskBertForMaskedLM,
    BriskBertForMultipleChoice,
    BriskBertForQuestionAnswering,
    BriskBertForSequenceClassification,
    BriskBertForTokenClassification,
    BriskBertModel,
)

STEPS = 30
LR = 1e-3
FALL = 0.7  # final loss must be below FALL * initial loss
N_EXAMPLES = 8
ENTITY_TYPES = ("PER", "ORG", "LOC", "MISC")


def tiny_config(tokenizer, **overrides):
    return BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer), hidden_dropout_prob=0.0, **overrides)


def train(model, step_loss, steps=STEPS):
    """`step_loss()` -> scalar loss of the current model; returns the loss of every step (before its update)."""
    torch.manual_seed(0)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = step_loss()
        assert torch.isfinite(loss), losses
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def assert_loss_falls(losses):
    assert losses[-1] < FALL * losses[0], f"loss did not fall enough: {losses[0]:.4g} -> {losses[-1]:.4g}"


# ---------------------------------------------------------------------------------------- real batches


def mask_tokens(tokenizer, batch, fraction=0.3, seed=0):
    """Mask `fraction` of the non-special real tokens ([MASK]); labels are the original ids there, -100 elsewhere."""
    ids = batch["input_ids"]
    special = torch.tensor(
        [tokenizer.get_special_tokens_mask(row, already_has_special_tokens=True) for row in ids.tolist()]
    ).bool()
    candidates = ~special & batch["attention_mask"].bool()
    generator = torch.Generator().manual_seed(seed)
    chosen = (torch.rand(ids.shape, generator=generator) < fraction) & candidates
    masked = dict(batch)
    masked["labels"] = torch.where(chosen, ids, torch.full_like(ids, -100))
    masked["input_ids"] = ids.masked_fill(chosen, tokenizer.mask_token_id)
    return masked


@pytest.fixture(scope="module")
def mlm_batch(tokenizer, make_batch, sentences):
    batch = mask_tokens(tokenizer, make_batch(sentences[:N_EXAMPLES]))
    assert (batch["labels"] != -100).sum() >= 20
    return batch


@pytest.fixture(scope="module")
def sst2_batch(make_batch, jsonl):
    rows = jsonl("glue/sst2/validation.jsonl", limit=N_EXAMPLES)
    batch = make_batch([r["sentence"] for r in rows])
    batch["labels"] = torch.tensor([r["label"] for r in rows])
    assert set(batch["labels"].tolist()) == {0, 1}
    return batch


@pytest.fixture(scope="module")
def stsb_batch(tokenizer, jsonl):
    rows = jsonl("glue/stsb/validation.jsonl", limit=N_EXAMPLES)
    batch = dict(
        tokenizer(
            [r["sentence1"] for r in rows], [r["sentence2"] for r in rows], padding=True, truncation=True,
            max_length=128, return_tensors="pt",
        )
    )
    batch["labels"] = torch.tensor([float(r["label"]) for r in rows])
    assert (batch["token_type_ids"] == 1).any()
    return batch


@pytest.fixture(scope="module")
def conll_rows(jsonl, data_dir):
    names = json.loads((data_dir / "conll2003" / "labels.json").read_text())["ner_tags"]
    rows = [r for r in jsonl("conll2003/validation.jsonl") if any(r["ner_tags"])][:N_EXAMPLES]
    return rows, names


@pytest.fixture(scope="module")
def multilabel_batch(make_batch, conll_rows):
    """Real multi-label targets: which entity types (PER, ORG, LOC, MISC) a CoNLL sentence mentions."""
    rows, names = conll_rows
    batch = make_batch([" ".join(r["tokens"]) for r in rows])
    labels = torch.zeros(len(rows), len(ENTITY_TYPES))
    for i, r in enumerate(rows):
        for tag in r["ner_tags"]:
            if tag:
                labels[i, ENTITY_TYPES.index(names[tag][2:])] = 1.0
    assert labels.sum(1).min() >= 1 and (labels.sum(1) > 1).any()
    batch["labels"] = labels
    return batch


@pytest.fixture(scope="module")
def ner_batch(tokenizer, conll_rows):
    rows, names = conll_rows
    enc = tokenizer(
        [r["tokens"] for r in rows], is_split_into_words=True, padding=True, truncation=True, max_length=128,
        return_tensors="pt",
    )
    labels = torch.full(enc["input_ids"].shape, -100)
    for i, r in enumerate(rows):
        previous = None
        for j, word in enumerate(enc.word_ids(i)):
            if word is not None and word != previous:  # first word piece of each word
                labels[i, j] = r["ner_tags"][word]
            previous = word
    batch = dict(enc)
    batch["labels"] = labels
    assert (labels > 0).sum() >= 5
    return batch, len(names)


@pytest.fixture(scope="module")
def squad_batch(tokenizer, jsonl):
    """Question + context (truncated to 128 tokens) with the answer's start/end token positions."""
    rows = jsonl("squad/validation.jsonl")
    chosen, starts, ends = [], [], []
    for r in rows:
        enc = tokenizer(r["question"], r["context"], truncation="only_second", max_length=128, return_offsets_mapping=True)
        answer_start = r["answers"]["answer_start"][0]
        answer_end = answer_start + len(r["answers"]["text"][0])
        seq_ids = enc.sequence_ids()
        start = end = None
        for k, (a, b) in enumerate(enc["offset_mapping"]):
            if seq_ids[k] != 1:
                continue
            if start is None and a <= answer_start < b:
                start = k
            if a < answer_end <= b:
                end = k
        if start is not None and end is not None:
            span = tokenizer.decode(enc["input_ids"][start : end + 1])
            assert span.lower().replace(" ", "") == r["answers"]["text"][0].lower().replace(" ", ""), span
            chosen.append(r)
            starts.append(start)
            ends.append(end)
        if len(chosen) == N_EXAMPLES:
            break
    assert len(chosen) == N_EXAMPLES
    batch = dict(
        tokenizer(
            [r["question"] for r in chosen], [r["context"] for r in chosen], truncation="only_second",
            max_length=128, padding=True, return_tensors="pt",
        )
    )
    batch["start_positions"] = torch.tensor(starts)
    batch["end_positions"] = torch.tensor(ends)
    assert batch["input_ids"].shape[1] <= 128
    return batch


@pytest.fixture(scope="module")
def copa_batch(tokenizer, jsonl):
    rows = jsonl("superglue/copa/validation.jsonl", limit=N_EXAMPLES)
    firsts = [r["premise"] for r in rows for _ in range(2)]
    seconds = [choice for r in rows for choice in (r["choice1"], r["choice2"])]
    enc = tokenizer(firsts, seconds, padding=True, truncation=True, max_length=128, return_tensors="pt")
    batch = {k: v.view(len(rows), 2, -1) for k, v in enc.items()}
    batch["labels"] = torch.tensor([r["label"] for r in rows])
    assert set(batch["labels"].tolist()) == {0, 1}
    return batch


# ------------------------------------------------------------------------------------------- training


def test_base_model_trains_with_mean_pool_regression(tokenizer, sst2_batch):
    """BriskBertModel has no loss: regress a fixed random projection of the sentence embedding onto +-1."""
    torch.manual_seed(0)
    model = BriskBertModel(tiny_config(tokenizer))
    probe = torch.randn(model.config.hidden_size) / model.config.hidden_size**0.5
    targets = sst2_batch["labels"].float() * 2 - 1
    inputs = {k: v for k, v in sst2_batch.items() if k != "labels"}

    def step_loss():
        pooled = model(**inputs).pooler_output
        return F.mse_loss(pooled @ probe, targets)

    assert_loss_falls(train(model, step_loss))


def test_masked_lm_trains(tokenizer, mlm_batch):
    torch.manual_seed(0)
    model = BriskBertForMaskedLM(tiny_config(tokenizer))
    assert_loss_falls(train(model, lambda: model(**mlm_batch).loss))


@pytest.mark.parametrize("problem", ["single_label_classification", "regression", "multi_label_classification"])
def test_sequence_classification_trains(tokenizer, problem, request):
    batch = request.getfixturevalue(
        {"single_label_classification": "sst2_batch", "regression": "stsb_batch",
         "multi_label_classification": "multilabel_batch"}[problem]
    )
    num_labels = {"single_label_classification": 2, "regression": 1,
                  "multi_label_classification": len(ENTITY_TYPES)}[problem]
    torch.manual_seed(0)
    model = BriskBertForSequenceClassification(tiny_config(tokenizer, num_labels=num_labels, problem_type=problem))
    with torch.no_grad():
        out = model.eval()(**batch)
    assert out.logits.shape == (N_EXAMPLES, num_labels)
    # the loss is the one the problem type calls for
    expected = {
        "single_label_classification": lambda: F.cross_entropy(out.logits, batch["labels"]),
        "regression": lambda: F.mse_loss(out.logits.squeeze(-1), batch["labels"]),
        "multi_label_classification": lambda: F.binary_cross_entropy_with_logits(out.logits, batch["labels"]),
    }[problem]()
    assert_close(out.loss, expected)
    assert_loss_falls(train(model, lambda: model(**batch).loss))


def test_sequence_classification_mean_pooling_trains(tokenizer, sst2_batch):
    torch.manual_seed(0)
    model = BriskBertForSequenceClassification(tiny_config(tokenizer, num_labels=2, classifier_pooling="mean"))
    assert_loss_falls(train(model, lambda: model(**sst2_batch).loss))


def test_token_classification_trains(tokenizer, ner_batch):
    batch, num_labels = ner_batch
    torch.manual_seed(0)
    model = BriskBertForTokenClassification(tiny_config(tokenizer, num_labels=num_labels))
    with torch.no_grad():
        out = model.eval()(**batch)
    assert out.logits.shape == (*batch["input_ids"].shape, num_labels)
    assert (out.logits[batch["attention_mask"] == 0] == 0).all(), "padding logits are zeros"
    real = batch["attention_mask"].bool()
    assert_close(out.loss, F.cross_entropy(out.logits[real], batch["labels"][real], ignore_index=-100))
    assert_loss_falls(train(model, lambda: model(**batch).loss))


def test_question_answering_trains(tokenizer, squad_batch):
    torch.manual_seed(0)
    model = BriskBertForQuestionAnswering(tiny_config(tokenizer))
    with torch.no_grad():
        out = model.eval()(**squad_batch)
    assert out.start_logits.shape == out.end_logits.shape == squad_batch["input_ids"].shape
    padding = squad_batch["attention_mask"] == 0
    assert padding.any()
    assert (out.start_logits[padding] == torch.finfo(torch.float32).min).all(), "padding is never a span end"
    assert out.start_logits.argmax(-1).lt(squad_batch["attention_mask"].sum(-1)).all()
    assert_loss_falls(train(model, lambda: model(**squad_batch).loss))


def test_multiple_choice_trains(tokenizer, copa_batch):
    torch.manual_seed(0)
    model = BriskBertForMultipleChoice(tiny_config(tokenizer))
    with torch.no_grad():
        out = model.eval()(**copa_batch)
    assert out.logits.shape == (N_EXAMPLES, 2)
    assert_close(out.loss, F.cross_entropy(out.logits, copa_batch["labels"]))
    assert_loss_falls(train(model, lambda: model(**copa_batch).loss))


def test_every_head_normalises_its_loss_by_num_items_in_batch(tokenizer, copa_batch, sst2_batch):
    """Gradient accumulation (transformers' Trainer) passes the whole accumulated batch's item count: every head's
    loss is then its summed loss over that count, multiple choice included."""
    torch.manual_seed(0)
    model = BriskBertForMultipleChoice(tiny_config(tokenizer)).eval()
    with torch.no_grad():
        logits = model(**copa_batch).logits
        summed = F.cross_entropy(logits, copa_batch["labels"], reduction="sum")
        loss = model(**copa_batch, num_items_in_batch=torch.tensor(32)).loss
    assert_close(loss, summed / 32)
    classifier = BriskBertForSequenceClassification(tiny_config(tokenizer, num_labels=2)).eval()
    with torch.no_grad():
        logits = classifier(**sst2_batch).logits
        loss = classifier(**sst2_batch, num_items_in_batch=torch.tensor(32)).loss
    assert_close(loss, F.cross_entropy(logits, sst2_batch["labels"], reduction="sum") / 32)


def test_the_head_registry_is_the_list_of_model_classes():
    """`HEADS` is written once: every model class of modeling_briskbert.py is in it, and auto_map, registration
    and the exported outputs come from it."""
    from briskbert.modeling import HEADS, modeling_briskbert
    from briskbert.modeling.heads import AUTO_MAP

    defined = {name for name, value in vars(modeling_briskbert).items() if isinstance(value, type)
               and issubclass(value, briskbert.BriskBertPreTrainedModel) and value is not briskbert.BriskBertPreTrainedModel}
    assert defined == {head.name for head in HEADS}
    assert set(AUTO_MAP) == {"AutoConfig", *(head.auto_class for head in HEADS)}
    assert {cls.__name__ for cls in briskbert.AUTO_CLASSES.values()} == defined
    assert all(hasattr(briskbert, head.name) for head in HEADS)


def test_multiple_choice_needs_three_dims(tokenizer, sst2_batch):
    model = BriskBertForMultipleChoice(tiny_config(tokenizer)).eval()
    with pytest.raises(ValueError, match=r"\[batch, choices, seq\]"):
        model(input_ids=sst2_batch["input_ids"])


# --------------------------------------------------------------------------------- MLM specifics


@pytest.fixture
def mlm_model(tokenizer):
    torch.manual_seed(0)
    return BriskBertForMaskedLM(tiny_config(tokenizer))


def test_sparse_prediction_shapes_and_equal_loss(mlm_model, mlm_batch):
    num_masked = int((mlm_batch["labels"] != -100).sum())
    vocab = mlm_model.config.vocab_size
    assert mlm_model.config.sparse_prediction
    mlm_model.train()
    sparse = mlm_model(**mlm_batch)
    assert sparse.logits.shape == (num_masked, vocab)
    mlm_model.eval()
    with torch.no_grad():
        dense = mlm_model(**mlm_batch)
    assert dense.logits.shape == (*mlm_batch["input_ids"].shape, vocab)
    assert_close(sparse.loss.detach(), dense.loss, rtol=1e-6, atol=1e-6)
    # the sparse logits are the dense ones at the masked positions
    masked = mlm_batch["labels"] != -100
    assert_close(sparse.logits.detach(), dense.logits[masked], rtol=1e-5, atol=1e-5)


def test_sparse_prediction_off_gives_dense_logits_in_training(tokenizer, mlm_batch):
    model = BriskBertForMaskedLM(tiny_config(tokenizer, sparse_prediction=False)).train()
    out = model(**mlm_batch)
    assert out.logits.shape == (*mlm_batch["input_ids"].shape, model.config.vocab_size)
    # without labels, training mode has nothing to select on and stays dense as well
    sparse_model = BriskBertForMaskedLM(tiny_config(tokenizer)).train()
    no_labels = {k: v for k, v in mlm_batch.items() if k != "labels"}
    assert sparse_model(**no_labels).logits.shape == out.logits.shape


def test_num_items_in_batch_normalises_the_summed_loss(mlm_model, mlm_batch):
    mlm_model.eval()
    masked = mlm_batch["labels"] != -100
    with torch.no_grad():
        out = mlm_model(**mlm_batch)
        summed = F.cross_entropy(out.logits[masked], mlm_batch["labels"][masked], reduction="sum")
        assert_close(out.loss, summed / masked.sum(), rtol=1e-6, atol=1e-6)
        for num_items in (int(masked.sum()) * 3, torch.tensor(1000)):
            loss = mlm_model(**mlm_batch, num_items_in_batch=num_items).loss
            assert_close(loss, summed / num_items, rtol=1e-6, atol=1e-6)
    mlm_model.train()  # the sparse path too
    loss = mlm_model(**mlm_batch, num_items_in_batch=torch.tensor(1000)).loss
    assert_close(loss.detach(), summed / 1000, rtol=1e-5, atol=1e-6)


def test_decoder_is_tied_to_word_embeddings(mlm_model, tmp_path):
    embeddings = mlm_model.get_input_embeddings()
    assert mlm_model.decoder.weight is embeddings.weight
    assert mlm_model.get_output_embeddings() is mlm_model.decoder
    with torch.no_grad():
        embeddings.weight[5].add_(1.0)  # a change through one name shows through the other
    mlm_model.save_pretrained(tmp_path)
    loaded = BriskBertForMaskedLM.from_pretrained(tmp_path)
    assert loaded.decoder.weight is loaded.model.embeddings.word_embeddings.weight
    assert torch.equal(loaded.decoder.weight, mlm_model.decoder.weight)
    assert torch.equal(loaded.decoder.bias, mlm_model.decoder.bias)


def test_tied_weights_stay_tied_while_training(mlm_model, mlm_batch):
    before = mlm_model.decoder.weight.detach().clone()
    train(mlm_model, lambda: mlm_model(**mlm_batch).loss, steps=2)
    assert mlm_model.decoder.weight is mlm_model.model.embeddings.word_embeddings.weight
    assert not torch.equal(before, mlm_model.decoder.weight)


# ----------------------------------------------------------------------------------------- weight init


def test_fresh_weights_follow_initializer_range(tokenizer):
    """BERT's init: N(0, initializer_range) for every Linear and Embedding weight (not PyTorch's defaults, e.g.
    N(0, 1) embeddings), zero biases and padding row, unit LayerNorms; for every head."""
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer), num_labels=3)
    std = config.initializer_range
    for cls in (BriskBertModel, BriskBertForMaskedLM, BriskBertForSequenceClassification,
                BriskBertForTokenClassification, BriskBertForQuestionAnswering, BriskBertForMultipleChoice):
        torch.manual_seed(0)
        model = cls(config)
        checked = 0
        for name, module in model.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)) and module.weight.numel() >= 128:
                weight = module.weight.detach()
                if isinstance(module, torch.nn.Embedding) and module.padding_idx is not None:
                    assert (weight[module.padding_idx] == 0).all(), f"{cls.__name__}.{name}: padding row"
                    weight = weight[torch.arange(weight.shape[0]) != module.padding_idx]
                assert abs(weight.std().item() - std) < 0.2 * std, (
                    f"{cls.__name__}.{name}: weight std {weight.std().item():.4f}, expected {std}"
                )
                assert abs(weight.mean().item()) < 0.2 * std, f"{cls.__name__}.{name}: mean"
                checked += 1
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                assert (module.bias == 0).all(), f"{cls.__name__}.{name}: bias should start at zero"
            if isinstance(module, torch.nn.LayerNorm):
                assert (module.weight == 1).all() and (module.bias == 0).all(), f"{cls.__name__}.{name}"
        assert checked >= 1 + 4 * config.num_hidden_layers, (cls.__name__, checked)


# ------------------------------------------------------------------------------------ Auto / remote code


def test_auto_classes_resolve_in_process():
    assert briskbert.AUTO_CLASSES  # importing briskbert registered everything
    config = AutoConfig.for_model("briskbert", **PRESETS["tiny"], vocab_size=1000)
    assert type(config) is BriskBertConfig and config.vocab_size == 1024
    assert type(AutoModelForMaskedLM.from_config(config)) is BriskBertForMaskedLM
    assert type(AutoModel.from_config(config)) is BriskBertModel
    assert type(AutoModelForSequenceClassification.from_config(config)) is BriskBertForSequenceClassification
    assert type(AutoModelForTokenClassification.from_config(config)) is BriskBertForTokenClassification
    assert type(AutoModelForQuestionAnswering.from_config(config)) is BriskBertForQuestionAnswering
    assert type(AutoModelForMultipleChoice.from_config(config)) is BriskBertForMultipleChoice


HEADS = {
    "model": (BriskBertModel, "AutoModel", ("last_hidden_state", "pooler_output")),
    "mlm": (BriskBertForMaskedLM, "AutoModelForMaskedLM", ("logits",)),
    "seqcls": (BriskBertForSequenceClassification, "AutoModelForSequenceClassification", ("logits",)),
    "tokcls": (BriskBertForTokenClassification, "AutoModelForTokenClassification", ("logits",)),
    "qa": (BriskBertForQuestionAnswering, "AutoModelForQuestionAnswering", ("start_logits", "end_logits")),
    "mc": (BriskBertForMultipleChoice, "AutoModelForMultipleChoice", ("logits",)),
}
AUTO_MAP_KEYS = {
    "AutoConfig", "AutoModel", "AutoModelForMaskedLM", "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification", "AutoModelForQuestionAnswering", "AutoModelForMultipleChoice",
}
CODE_FILES = tuple(MODEL_CODE_FILES)

_CHILD = """
import json, sys
import torch
import transformers

heads = json.load(open("heads.json"))
report = {}
for name, (auto_name, keys) in heads.items():
    auto_class = getattr(transformers, auto_name)
    model = auto_class.from_pretrained(name, trust_remote_code=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(name, trust_remote_code=True)
    inputs = torch.load(f"{name}_inputs.pt")
    with torch.no_grad():
        out = model(**inputs)
    torch.save({k: getattr(out, k) for k in keys}, f"{name}_child_outputs.pt")
    report[name] = {
        "module": type(model).__module__,
        "class": type(model).__name__,
        "config_module": type(model.config).__module__,
        "vocab": len(tokenizer),
    }
for mod in sys.modules:
    assert mod.split(".")[0] not in ("briskbert", "modeling", "trainers"), mod
print("REPORT " + json.dumps(report))
"""


def test_save_and_load_every_head_through_remote_code(tmp_path, tokenizer, make_batch, sentences, run_fresh_python):
    torch.manual_seed(0)
    config = tiny_config(tokenizer, num_labels=3)
    text_inputs = make_batch(sentences[:4])
    copa = tokenizer(
        [sentences[i] for i in (0, 0, 1, 1)], [sentences[i] for i in (3, 4, 5, 6)], padding=True, return_tensors="pt"
    )
    mc_inputs = {k: v.view(2, 2, -1) for k, v in copa.items()}
    expected = {}
    for name, (cls, auto_name, keys) in HEADS.items():
        model = cls(config).eval()
        folder = tmp_path / name
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        inputs = mc_inputs if name == "mc" else text_inputs
        torch.save(inputs, tmp_path / f"{name}_inputs.pt")
        with torch.no_grad():
            out = model(**inputs)
        expected[name] = {k: getattr(out, k) for k in keys}

        saved = json.loads((folder / "config.json").read_text())
        assert saved["model_type"] == "briskbert"
        assert AUTO_MAP_KEYS <= set(saved["auto_map"]), saved["auto_map"]
        assert saved["auto_map"][auto_name].endswith(cls.__name__)
        for filename in (*CODE_FILES, "model.safetensors", "tokenizer.json"):
            assert (folder / filename).is_file(), f"{name}: {filename} was not written"
    (tmp_path / "heads.json").write_text(json.dumps({n: [a, list(k)] for n, (_, a, k) in HEADS.items()}))

    stdout = run_fresh_python(_CHILD, cwd=tmp_path)
    report_lines = [line for line in stdout.splitlines() if line.startswith("REPORT ")]
    assert len(report_lines) == 1, stdout
    report = json.loads(report_lines[0][len("REPORT "):])

    for name, (cls, auto_name, keys) in HEADS.items():
        assert report[name]["module"].startswith("transformers_modules"), report[name]
        assert report[name]["config_module"].startswith("transformers_modules"), report[name]
        assert report[name]["class"] == cls.__name__
        assert report[name]["vocab"] == len(tokenizer)
        child = torch.load(tmp_path / f"{name}_child_outputs.pt")
        for key in keys:
            assert child[key].shape == expected[name][key].shape, (name, key)
            assert_close(child[key], expected[name][key], rtol=0, atol=1e-6, msg=lambda m: f"{name}.{key}: {m}")


def test_fresh_python_cannot_import_local_packages(tmp_path, run_fresh_python):
    out = run_fresh_python(
        """
        import importlib
        for name in ("briskbert", "modeling", "trainers", "briskbert.modeling"):
            try:
                importlib.import_module(name)
            except ImportError:
                print("blocked", name)
        import os
        print("cwd", os.getcwd())
        print("pythonpath", os.environ.get("PYTHONPATH"))
        print("offline", os.environ.get("HF_HUB_OFFLINE"))
        """,
        cwd=tmp_path,
    )
    for name in ("briskbert", "modeling", "trainers", "briskbert.modeling"):
        assert f"blocked {name}" in out
    assert f"cwd {tmp_path}" in out
    assert "pythonpath None" in out and "offline 1" in out
    with pytest.raises(pytest.fail.Exception, match="ZeroDivisionError"):
        run_fresh_python("1 / 0", cwd=tmp_path)


def test_a_checkpoint_with_the_old_pooler_layout_is_refused_naming_the_renames(tmp_path, tokenizer):
    """BriskBERT 0.1.0 saved the pooler beside the classifier; loading it must not start a fine-tuned head afresh."""
    from safetensors.torch import load_file, save_file

    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer), num_labels=2)
    BriskBertForSequenceClassification(config).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    old = {key.replace("classifier.dense.", "pooler.dense.").replace("classifier.out_proj.", "classifier."): value
           for key, value in weights.items()}
    save_file(old, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"pooler\.dense\.\* -> classifier\.dense\.\*"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path)
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    AutoModelForSequenceClassification.from_pretrained(tmp_path)  # renamed: loads


def test_every_head_hands_its_inputs_to_the_encoder_in_one_place(tokenizer, make_batch, sentences, monkeypatch):
    """Heads keep transformers' explicit signatures but pass their inputs on through `encoder_inputs`: every head
    hands `encode` exactly the encoder inputs it was called with, and an input a head does not name yet (a new one
    added to `encode` and `ENCODER_INPUTS` only) still reaches the encoder through the head's **kwargs."""
    from briskbert.modeling import modeling_briskbert

    config = tiny_config(tokenizer, num_labels=3)
    batch = make_batch(sentences[:4])
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
              "token_type_ids": torch.zeros_like(batch["input_ids"]), "output_hidden_states": True,
              "output_attentions": False}
    seen = []
    real_encode = modeling_briskbert.BriskBertModel.encode

    def recording_encode(self, **kwargs):
        seen.append(kwargs)
        return real_encode(self, **{k: v for k, v in kwargs.items() if k != "future_input"})

    monkeypatch.setattr(modeling_briskbert.BriskBertModel, "encode", recording_encode)
    monkeypatch.setattr(modeling_briskbert, "ENCODER_INPUTS", (*modeling_briskbert.ENCODER_INPUTS, "future_input"))
    for name, (cls, _, _) in HEADS.items():
        model = cls(config).eval()
        given = {k: v.view(2, 2, -1) if torch.is_tensor(v) else v for k, v in inputs.items()} if name == "mc" \
            else inputs
        seen.clear()
        with torch.no_grad():
            model(**given, future_input="reached")
        (received,) = seen
        assert received.pop("future_input") == "reached", name
        passed = {key for key, value in received.items() if value is not None}  # the rest are the defaults, None
        assert passed == set(given), (name, passed ^ set(given))
        for key, value in given.items():
            expected = value.reshape(-1, value.shape[-1]) if name == "mc" and torch.is_tensor(value) else value
            assert (received[key] == expected).all() if torch.is_tensor(value) else received[key] == value, (name, key)
