"""Unpadding: every input layout (padded, alone, packed rows, flat packed) gives the same per-token outputs.

Per-sentence outputs of one sentence run alone (no padding, no companions) are the reference; every
other layout must reproduce them to 1e-5 in fp32, for the sdpa and eager backends.
"""

import functools

import pytest
import torch

from briskbert import BriskBertConfig, BriskBertModel

ATOL = 1e-5
BACKENDS = ["sdpa", "eager"]


@pytest.fixture(scope="module")
def base_model(tokenizer):
    torch.manual_seed(0)
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer))
    return BriskBertModel(config).eval()


@pytest.fixture(params=BACKENDS)
def model(request, base_model):
    base_model.set_attn_implementation(request.param)
    assert base_model.config._attn_implementation == request.param
    yield base_model
    base_model.set_attn_implementation("sdpa")


@pytest.fixture(scope="module")
def token_lists(tokenizer, sentences):
    ids = tokenizer(sentences, truncation=True, max_length=128)["input_ids"]
    lengths = [len(x) for x in ids]
    assert min(lengths) < 10 and max(lengths) > 40, lengths  # varied lengths, or the test proves little
    return ids


@pytest.fixture(scope="module")
def alone_outputs(base_model, token_lists):
    """Reference per backend: each sentence alone, [1, len] with no mask."""
    cache = {}

    def get(backend):
        if backend not in cache:
            base_model.set_attn_implementation(backend)
            with torch.no_grad():
                cache[backend] = [base_model(input_ids=torch.tensor([ids])) for ids in token_lists]
        return cache[backend]

    return get


def _pad(token_lists, length=None, pad_id=0):
    length = length or max(map(len, token_lists))
    ids = torch.full((len(token_lists), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_lists), length), dtype=torch.long)
    for i, seq in enumerate(token_lists):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    return ids, mask


def _assert_close(actual, expected, what):
    diff = (actual - expected).abs().max().item()
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    assert diff <= ATOL, f"{what}: max abs diff {diff:.3g} > {ATOL}"


def test_alone_outputs_are_finite_and_distinct(model, alone_outputs, token_lists):
    outs = alone_outputs(model.config._attn_implementation)
    assert len(outs) == len(token_lists)
    for out, ids in zip(outs, token_lists):
        assert out.last_hidden_state.shape == (1, len(ids), model.config.hidden_size)
        assert torch.isfinite(out.last_hidden_state).all()
    # different sentences really give different outputs (guards against a degenerate comparison)
    assert not torch.allclose(outs[0].pooler_output, outs[1].pooler_output, atol=1e-3)


def test_padded_batch_matches_alone(model, alone_outputs, token_lists, make_batch, sentences):
    batch = make_batch(sentences)
    assert (batch["attention_mask"] == 0).any()
    with torch.no_grad():
        out = model(**batch)
    ref = alone_outputs(model.config._attn_implementation)
    hidden = out.last_hidden_state
    for i, ids in enumerate(token_lists):
        n = len(ids)
        assert batch["input_ids"][i, :n].tolist() == ids
        _assert_close(hidden[i, :n], ref[i].last_hidden_state[0], f"sentence {i} padded vs alone")
        assert (hidden[i, n:] == 0).all(), "padding positions must come back as zeros"
        _assert_close(out.pooler_output[i], ref[i].pooler_output[0], f"pooler {i}")


def test_pooler_output_is_masked_mean_of_real_tokens(model, make_batch, sentences):
    batch = make_batch(sentences[:10])
    with torch.no_grad():
        out = model(**batch)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    manual = (out.last_hidden_state * mask).sum(1) / mask.sum(1)
    _assert_close(out.pooler_output, manual, "pooler_output vs manual masked mean")
    assert out.pooler_output.shape == (10, model.config.hidden_size)


def _pack_rows(token_lists, num_rows):
    """Greedy packing: document i goes to row i % num_rows; returns ids, mask, sequence_ids and doc order."""
    rows = [[] for _ in range(num_rows)]
    for doc, seq in enumerate(token_lists):
        rows[doc % num_rows].append(doc)
    length = max(sum(len(token_lists[d]) for d in row) for row in rows)
    ids = torch.zeros((num_rows, length), dtype=torch.long)
    mask = torch.zeros((num_rows, length), dtype=torch.long)
    sequence_ids = torch.full((num_rows, length), -1, dtype=torch.long)
    spans = {}
    for r, row in enumerate(rows):
        pos = 0
        for doc in row:
            n = len(token_lists[doc])
            ids[r, pos : pos + n] = torch.tensor(token_lists[doc])
            mask[r, pos : pos + n] = 1
            sequence_ids[r, pos : pos + n] = doc
            spans[doc] = (r, pos, pos + n)
            pos += n
    order = [doc for row in rows for doc in row]  # document order in the flattened real tokens
    return ids, mask, sequence_ids, spans, order


def test_packed_rows_with_sequence_ids_match_alone(model, alone_outputs, token_lists):
    ids, mask, sequence_ids, spans, order = _pack_rows(token_lists, num_rows=5)
    assert (mask == 0).any(), "some rows should end in padding"
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, sequence_ids=sequence_ids)
    ref = alone_outputs(model.config._attn_implementation)
    for doc, (r, start, end) in spans.items():
        _assert_close(out.last_hidden_state[r, start:end], ref[doc].last_hidden_state[0], f"packed doc {doc}")
    # one pooled vector per document, in row-major order of the documents
    assert out.pooler_output.shape == (len(token_lists), model.config.hidden_size)
    for k, doc in enumerate(order):
        _assert_close(out.pooler_output[k], ref[doc].pooler_output[0], f"packed pooler doc {doc}")


def test_packed_rows_split_documents_at_row_boundaries(model, alone_outputs, token_lists):
    # the same document id on consecutive rows must still be two documents
    ids, mask = _pad(token_lists[:6])
    sequence_ids = torch.zeros_like(ids)
    with torch.no_grad():
        packed = model(input_ids=ids, attention_mask=mask, sequence_ids=sequence_ids)
        padded = model(input_ids=ids, attention_mask=mask)
    _assert_close(packed.last_hidden_state, padded.last_hidden_state, "constant sequence_ids vs padded")
    assert packed.pooler_output.shape[0] == 6


def test_packing_without_sequence_ids_differs(model, token_lists):
    # sanity check that document boundaries matter: the same row without sequence_ids attends across documents
    ids, mask, sequence_ids, spans, _ = _pack_rows(token_lists[:4], num_rows=1)
    with torch.no_grad():
        with_ids = model(input_ids=ids, attention_mask=mask, sequence_ids=sequence_ids).last_hidden_state
        without = model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (with_ids - without).abs().max() > 1e-3


def test_flat_packed_with_cu_seqlens_matches_alone(model, alone_outputs, token_lists):
    flat = torch.tensor([[t for seq in token_lists for t in seq]])
    lengths = torch.tensor([len(seq) for seq in token_lists])
    cu_seqlens = torch.nn.functional.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
    ref = alone_outputs(model.config._attn_implementation)
    with torch.no_grad():
        out = model(input_ids=flat, cu_seqlens=cu_seqlens)
        out_1d = model(input_ids=flat[0], cu_seqlens=cu_seqlens)
    assert out.last_hidden_state.shape == (1, flat.shape[1], model.config.hidden_size)
    for doc in range(len(token_lists)):
        start, end = int(cu_seqlens[doc]), int(cu_seqlens[doc + 1])
        _assert_close(out.last_hidden_state[0, start:end], ref[doc].last_hidden_state[0], f"flat doc {doc}")
        _assert_close(out.pooler_output[doc], ref[doc].pooler_output[0], f"flat pooler doc {doc}")
    _assert_close(out_1d.last_hidden_state, out.last_hidden_state, "[total] vs [1, total] input")


def test_extra_padding_does_not_change_outputs(model, token_lists):
    subset = token_lists[:8]
    longest = max(map(len, subset))
    ids, mask = _pad(subset)
    ids2, mask2 = _pad(subset, length=2 * longest)
    with torch.no_grad():
        tight = model(input_ids=ids, attention_mask=mask)
        loose = model(input_ids=ids2, attention_mask=mask2)
    _assert_close(loose.last_hidden_state[:, :longest], tight.last_hidden_state, "pad to 2x vs tight")
    assert (loose.last_hidden_state[:, longest:] == 0).all()
    _assert_close(loose.pooler_output, tight.pooler_output, "pooler pad to 2x vs tight")


def test_batch_companions_do_not_change_outputs(model, token_lists):
    target = token_lists[0]
    n = len(target)
    results = []
    for companions in ([], [1, 2], [5, 10, 20], [23, 2, 17, 8, 3]):
        ids, mask = _pad([target] + [token_lists[c] for c in companions])
        with torch.no_grad():
            results.append(model(input_ids=ids, attention_mask=mask).last_hidden_state[0, :n])
    for k, result in enumerate(results[1:], start=1):
        _assert_close(result, results[0], f"companion set {k}")


def test_token_type_ids_and_inputs_embeds_paths(model, make_batch, sentences):
    batch = make_batch(sentences[:6])
    with torch.no_grad():
        with_types = model(**batch).last_hidden_state
        without_types = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        embeds = model.get_input_embeddings()(batch["input_ids"])
        from_embeds = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).last_hidden_state
        segment_one = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=torch.ones_like(batch["input_ids"]),
        ).last_hidden_state
    _assert_close(without_types, with_types, "token_type_ids=0 vs None")
    _assert_close(from_embeds, with_types, "inputs_embeds vs input_ids")
    assert (segment_one - with_types).abs().max() > 1e-3, "token_type_ids must matter"


def test_output_hidden_states_are_repadded(model, make_batch, sentences):
    batch = make_batch(sentences[:5])
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    for state in out.hidden_states:
        assert state.shape == out.last_hidden_state.shape
        assert (state[batch["attention_mask"] == 0] == 0).all()
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)


def keep_glu_projection_whole(model):
    """A no-op hook on every GLU `Wi`: the blocks then call the module, as for an adapter or offloading hook."""
    for layer in model.layers:
        layer.mlp.Wi.register_forward_pre_hook(lambda module, args: None)


@pytest.mark.parametrize("mlp_type", ["glu", "mlp"])
def test_inference_without_autograd_gives_the_same_result(tokenizer, make_batch, sentences, mlp_type):
    # without autograd the blocks add residuals and gate in place (residual_add), which keeps every bit, and the
    # GLU's input projection runs as two half-width matmuls, which sums in another order: rounding only
    torch.manual_seed(0)
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer), mlp_type=mlp_type)
    model = BriskBertModel(config).eval()
    batch = make_batch(sentences[:6])
    with torch.no_grad():
        fast = model(**batch, output_hidden_states=True)
    with torch.enable_grad():
        graph = model(**batch, output_hidden_states=True)
    assert graph.last_hidden_state.requires_grad
    same = torch.equal if mlp_type == "mlp" else functools.partial(torch.allclose, rtol=1e-5, atol=1e-5)
    assert same(fast.last_hidden_state, graph.last_hidden_state)
    assert same(fast.pooler_output, graph.pooler_output)
    for without, with_graph in zip(fast.hidden_states, graph.hidden_states, strict=True):
        assert same(without, with_graph)
    if mlp_type == "glu":  # with the projection whole, in-place work alone: the same bits
        keep_glu_projection_whole(model)
        with torch.no_grad():
            whole = model(**batch, output_hidden_states=True)
        for without, with_graph in zip(whole.hidden_states, graph.hidden_states, strict=True):
            assert torch.equal(without, with_graph)


def test_inference_glu_split_honours_hooks_and_adapters(tokenizer, make_batch, sentences):
    # the split multiplies Wi's weight directly, so it must step aside whenever calling Wi means more than that
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = BriskBertModel(BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer))).eval()
    batch = make_batch(sentences[:4])
    with torch.no_grad():
        plain = model(**batch).last_hidden_state
        handle = model.layers[0].mlp.Wi.register_forward_hook(lambda module, args, output: 2 * output)
        hooked = model(**batch).last_hidden_state
        handle.remove()
        assert not torch.allclose(hooked, plain, atol=1e-3)
        assert torch.equal(model(**batch).last_hidden_state, plain)

        lora = get_peft_model(model, LoraConfig(r=4, target_modules=["Wi"], init_lora_weights=False)).eval()
        adapted = lora(**batch).last_hidden_state
        assert not torch.allclose(adapted, plain, atol=1e-3)
        merged = lora.merge_and_unload()(**batch).last_hidden_state
    torch.testing.assert_close(adapted, merged, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------- bad inputs


def test_sequences_are_stored_by_length_and_given_back_in_callers_order(tokenizer, token_lists):
    """Sequences run sorted by length inside the model; everything per sequence must come back in input order."""
    from briskbert import BriskBertForMaskedLM, BriskBertForSequenceClassification
    from briskbert.modeling.unpadding import unpad_batch

    ids, mask = _pad(token_lists[:6])
    batch = unpad_batch(tuple(ids.shape), ids.device, mask)
    assert batch.sequence_order is not None, "these rows differ in length and arrive unsorted"
    assert (batch.seqlens[1:] >= batch.seqlens[:-1]).all()
    assert torch.equal(batch.restore_sequence_order(batch.seqlens), mask.sum(1).int())

    torch.manual_seed(0)
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer), num_labels=3, hidden_dropout_prob=0.0)
    classifier = BriskBertForSequenceClassification(config).eval()
    with torch.no_grad():
        together = classifier(input_ids=ids, attention_mask=mask).logits
        alone = torch.cat([classifier(input_ids=torch.tensor([row])).logits for row in token_lists[:6]])
    _assert_close(together, alone, "classification logits per row")

    mlm = BriskBertForMaskedLM(config).train()  # train mode: sparse logits; dropout is 0
    labels = torch.where((torch.rand(ids.shape) < 0.3) & mask.bool(), ids, -100)
    sparse = mlm(input_ids=ids, attention_mask=mask, labels=labels).logits
    dense = mlm.eval()(input_ids=ids, attention_mask=mask).logits
    _assert_close(sparse, dense[labels != -100], "sparse MLM logits rows follow labels[labels != -100]")

    mlm.set_attn_implementation("eager")
    attentions = mlm(input_ids=ids, attention_mask=mask, output_attentions=True).attentions[0]
    real_keys = (attentions[:, 0, 0, :] > 0).sum(-1)  # first query of each sequence: weight on real keys only
    assert torch.equal(real_keys, mask.sum(1)), "attention maps must be in the caller's row order"


@pytest.fixture(scope="module")
def small_model():
    config = BriskBertConfig.from_preset("tiny", vocab_size=1024)
    assert config.vocab_size == 1024
    return BriskBertModel(config).eval()


def test_attention_mask_shape_mismatch_raises(small_model):
    ids = torch.randint(1, 1000, (2, 6))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 5\) but input_ids has shape \(2, 6\)"):
        small_model(input_ids=ids, attention_mask=torch.ones(2, 5, dtype=torch.long))


@pytest.mark.parametrize("shape", [(0, 5), (2, 0)])
def test_empty_batch_raises(small_model, shape):
    ids = torch.zeros(shape, dtype=torch.long)
    with pytest.raises(ValueError, match="The batch is empty"):
        small_model(input_ids=ids)
    with pytest.raises(ValueError, match="The batch is empty"):
        small_model(input_ids=ids, attention_mask=torch.ones(shape, dtype=torch.long))


def test_all_padding_row_raises(small_model):
    ids = torch.randint(1, 1000, (3, 6))
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[1] = 0
    with pytest.raises(ValueError, match=r"Row\(s\) \[1\] of the batch hold no real token"):
        small_model(input_ids=ids, attention_mask=mask)


@pytest.mark.parametrize("bad_id, shown", [(1024, "1024"), (5000, "5000"), (-1, "-1")])
def test_out_of_vocab_token_id_raises(small_model, bad_id, shown):
    ids = torch.randint(1, 1000, (2, 6))
    ids[1, 3] = bad_id
    with pytest.raises(ValueError, match=rf"token id {shown}, outside this model's vocabulary \(0\.\.1023\)"):
        small_model(input_ids=ids)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bool])
def test_non_integer_input_ids_raise_naming_the_fix(small_model, dtype):
    ids = torch.randint(1, 1000, (2, 6)).to(dtype)
    with pytest.raises(ValueError, match=rf"input_ids must hold integer token ids, got dtype {dtype}.*inputs_embeds"):
        small_model(input_ids=ids)


def test_last_vocab_id_is_accepted(small_model):
    ids = torch.tensor([[0, 1023, 5]])
    with torch.no_grad():
        assert torch.isfinite(small_model(input_ids=ids).last_hidden_state).all()


def test_cu_seqlens_with_attention_mask_raises(small_model):
    ids = torch.randint(1, 1000, (1, 10))
    cu = torch.tensor([0, 4, 10], dtype=torch.int32)
    with pytest.raises(ValueError, match="without attention_mask and sequence_ids"):
        small_model(input_ids=ids, cu_seqlens=cu, attention_mask=torch.ones(1, 10, dtype=torch.long))
    with pytest.raises(ValueError, match="without attention_mask and sequence_ids"):
        small_model(input_ids=ids, cu_seqlens=cu, sequence_ids=torch.zeros(1, 10, dtype=torch.long))


@pytest.mark.parametrize(
    "cu",
    [
        [1, 10],  # does not start at 0
        [0, 4, 9],  # does not end at the number of tokens
        [0, 4, 12],  # ends past it
        [0, 6, 4, 10],  # not increasing
        [0, 4, 4, 10],  # an empty document
        [[0, 4, 10]],  # not 1-D
        [],  # no boundaries at all
    ],
)
def test_malformed_cu_seqlens_raises(small_model, cu):
    ids = torch.randint(1, 1000, (1, 10))
    with pytest.raises(ValueError, match="cu_seqlens must rise strictly from 0 to the number of tokens"):
        small_model(input_ids=ids, cu_seqlens=torch.tensor(cu, dtype=torch.int32))


def test_cu_seqlens_needs_flat_input(small_model):
    ids = torch.randint(1, 1000, (2, 5))
    with pytest.raises(ValueError, match=r"must be flat, \[total\] or \[1, total\]"):
        small_model(input_ids=ids, cu_seqlens=torch.tensor([0, 5, 10], dtype=torch.int32))


def test_flat_input_without_cu_seqlens_raises(small_model):
    with pytest.raises(ValueError, match="also needs cu_seqlens"):
        small_model(input_ids=torch.randint(1, 1000, (7,)))


def test_sequence_ids_shape_mismatch_raises(small_model):
    ids = torch.randint(1, 1000, (2, 6))
    with pytest.raises(ValueError, match=r"sequence_ids has shape \(2, 5\)"):
        small_model(input_ids=ids, sequence_ids=torch.zeros(2, 5, dtype=torch.long))


def test_input_ids_and_inputs_embeds_both_or_neither_raise(small_model):
    ids = torch.randint(1, 1000, (1, 4))
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        small_model(input_ids=ids, inputs_embeds=torch.zeros(1, 4, 64))
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        small_model()
