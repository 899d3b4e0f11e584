"""The two BERT-compatibility switches: learned absolute positions (no ALiBi) and BERT's plain GELU MLP.

They must run on the same unpadded path and attention seam as the recipe: every backend agrees with eager
without ALiBi, positions restart at 0 in every sequence and every packed document, and bad values are refused.
"""

import importlib.util

import pytest
import torch
from torch.testing import assert_close

from briskbert import BriskBertConfig, BriskBertForMaskedLM, BriskBertModel
from briskbert.modeling.modeling_briskbert import BriskBertGatedMLP, BriskBertMLP

ATOL = 1e-5
HAS_CUDA = torch.cuda.is_available()
HAS_FLASH_ATTN = importlib.util.find_spec("flash_attn") is not None


def bert_like_config(tokenizer, **overrides):
    return BriskBertConfig.from_preset(
        "tiny", vocab_size=len(tokenizer), position_embedding_type="absolute", mlp_type="mlp",
        max_position_embeddings=128, hidden_dropout_prob=0.0, **overrides,
    )


@pytest.fixture(scope="module")
def bert_like_model(tokenizer):
    torch.manual_seed(0)
    model = BriskBertModel(bert_like_config(tokenizer)).eval()
    with torch.no_grad():  # position embeddings large enough that a wrong position shows
        model.embeddings.position_embeddings.weight.normal_(0, 0.5)
    return model


def test_defaults_are_the_mosaicbert_recipe(tokenizer):
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer))
    assert (config.position_embedding_type, config.mlp_type) == ("alibi", "glu")
    model = BriskBertModel(config)
    assert model.embeddings.position_embeddings is None
    assert isinstance(model.layers[0].mlp, BriskBertGatedMLP)


def test_bert_switches_build_bert_layers(tokenizer):
    model = BriskBertModel(bert_like_config(tokenizer))
    assert model.embeddings.position_embeddings.weight.shape == (128, 64)
    assert isinstance(model.layers[0].mlp, BriskBertMLP)
    assert model.layers[0].mlp.Wi.weight.shape == (128, 64) and model.layers[0].mlp.Wi.bias is not None


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("position_embedding_type", "rope", "position_embedding_type must be one of"),
        ("position_embedding_type", "relative_key", "position_embedding_type must be one of"),
        ("mlp_type", "swiglu", "mlp_type must be one of"),
        ("max_position_embeddings", 0, "max_position_embeddings must be at least 1"),
    ],
)
def test_bad_values_are_refused(field, value, message):
    overrides = {"position_embedding_type": "absolute", field: value}
    with pytest.raises(ValueError, match=message):
        BriskBertConfig.from_preset("tiny", **overrides)


def test_too_long_input_names_the_fix(bert_like_model):
    ids = torch.full((1, 129), 5)
    with pytest.raises(ValueError, match="truncat"):
        bert_like_model(input_ids=ids)


def test_positions_restart_in_every_sequence_and_packed_document(bert_like_model, make_batch, sentences):
    """Two documents packed in one row give what each gives alone, in a padded batch of its own."""
    alone = make_batch(sentences[:2])
    lengths = alone["attention_mask"].sum(1).tolist()
    ids = torch.cat([alone["input_ids"][i, : lengths[i]] for i in range(2)])[None]
    sequence_ids = torch.tensor([[0] * lengths[0] + [1] * lengths[1]])
    with torch.no_grad():
        separate = bert_like_model(**alone).last_hidden_state
        packed = bert_like_model(input_ids=ids, sequence_ids=sequence_ids).last_hidden_state[0]
        flat = bert_like_model(
            input_ids=ids[0], cu_seqlens=torch.tensor([0, lengths[0], sum(lengths)])
        ).last_hidden_state[0]
    expected = torch.cat([separate[i, : lengths[i]] for i in range(2)])
    assert_close(packed, expected, rtol=0, atol=ATOL)
    assert_close(flat, expected, rtol=0, atol=ATOL)


def test_no_alibi_eager_matches_a_plain_padded_computation(bert_like_model, make_batch, sentences):
    """Without ALiBi, eager attention is textbook softmax(q k^T / sqrt(d)) v over the real keys."""
    batch = make_batch(sentences[:4])
    model, config = bert_like_model, bert_like_model.config
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(**batch, output_attentions=True)
    finally:
        model.set_attn_implementation("sdpa")
    probs = out.attentions[0]  # [sequences, heads, L, L] in the caller's order
    lengths = batch["attention_mask"].sum(1)
    for row, length in enumerate(lengths.tolist()):
        assert probs[row, :, :length, length:].abs().sum() == 0, "padding got attention"
    with torch.no_grad():
        positions = torch.arange(batch["input_ids"].shape[1])
        embeddings = model.embeddings.word_embeddings(batch["input_ids"]) + model.embeddings.token_type_embeddings(
            batch["token_type_ids"]
        ) + model.embeddings.position_embeddings(positions)
        hidden = model.embeddings.norm(embeddings)
        qkv = model.layers[0].attention.Wqkv(hidden).view(*hidden.shape[:2], 3, config.num_attention_heads, -1)
        q, k, _ = qkv.permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / config.head_dim**0.5
        scores = scores.masked_fill(~batch["attention_mask"].bool()[:, None, None, :], float("-inf"))
        expected = scores.softmax(-1)
    real = batch["attention_mask"].bool()
    for row in range(4):
        n = int(real[row].sum())
        assert_close(probs[row, :, :n, :n], expected[row, :, :n, :n], rtol=0, atol=ATOL)


def _hidden(model, batch, implementation):
    model.set_attn_implementation(implementation)
    try:
        with torch.no_grad():
            return model(**batch).last_hidden_state
    finally:
        model.set_attn_implementation("sdpa")


@pytest.mark.parametrize("implementation", ["sdpa", "flex_attention"])
def test_backends_match_eager_without_alibi(bert_like_model, make_batch, sentences, implementation):
    batch = make_batch(sentences[:8])
    expected = _hidden(bert_like_model, batch, "eager")
    actual = _hidden(bert_like_model, batch, implementation)
    real = batch["attention_mask"].bool()
    assert_close(actual[real], expected[real], rtol=0, atol=ATOL)
    assert actual[~real].abs().max() == 0


@pytest.mark.skipif(not (HAS_CUDA and HAS_FLASH_ATTN), reason="flash_attention_2 needs CUDA and the flash-attn package")
def test_flash_attention_2_matches_eager_without_alibi_on_cuda(bert_like_model, make_batch, sentences):
    batch = {k: v.cuda() for k, v in make_batch(sentences[:8]).items()}
    model = bert_like_model.cuda()
    try:
        expected = _hidden(model, batch, "eager")
        actual = _hidden(model, batch, "flash_attention_2")
    finally:
        bert_like_model.cpu()
    real = batch["attention_mask"].bool()
    assert_close(actual[real], expected[real], rtol=5e-2, atol=5e-2)  # flash-attn computes in bf16


def test_bert_like_mlm_trains(tokenizer, make_batch, sentences):
    """Gradients flow through position embeddings and the plain MLP on the unpadded path."""
    torch.manual_seed(0)
    model = BriskBertForMaskedLM(bert_like_config(tokenizer)).train()
    batch = make_batch(sentences[:8])
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    assert model.model.embeddings.position_embeddings.weight.grad.abs().sum() > 0
