"""ALiBi attention: slopes, backend parity (eager is the reference), long inputs, attention probabilities,
bf16 autocast, and gradient checkpointing."""

import importlib.util

import pytest
import torch
from torch.testing import assert_close

from briskbert import BriskBertConfig, BriskBertForMaskedLM, BriskBertModel
from briskbert.modeling.attention import alibi_bias, alibi_slopes
from briskbert.modeling.modeling_briskbert import LowPrecisionLayerNorm

ATOL = 1e-5
HAS_CUDA = torch.cuda.is_available()
HAS_FLASH_ATTN = importlib.util.find_spec("flash_attn") is not None


# ------------------------------------------------------------------------------------------------ slopes


def test_alibi_slopes_8_heads():
    expected = [2**-1, 2**-2, 2**-3, 2**-4, 2**-5, 2**-6, 2**-7, 2**-8]
    assert_close(alibi_slopes(8), torch.tensor(expected), rtol=0, atol=1e-7)


def test_alibi_slopes_12_heads():
    expected = [2**-1, 2**-2, 2**-3, 2**-4, 2**-5, 2**-6, 2**-7, 2**-8, 2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5]
    assert_close(alibi_slopes(12), torch.tensor(expected), rtol=0, atol=1e-7)


def test_alibi_slopes_6_heads():
    # Press et al.'s reference `get_slopes(6)`: the 4-head slopes [2^-2, 2^-4, 2^-6, 2^-8] followed by
    # get_slopes(8)[0::2][:2] = [2^-1, 2^-3, 2^-5, 2^-7][:2] = [2^-1, 2^-3]. (Not 2^-5 as the last slope:
    # that would be the third element of the interleaved list.)
    expected = [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]
    assert_close(alibi_slopes(6), torch.tensor(expected), rtol=0, atol=1e-7)


def _paper_slopes(n):
    """Independent restatement of the ALiBi paper's reference slope recipe."""
    import math

    if math.log2(n).is_integer():
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start ** (i + 1) for i in range(n)]
    closest = 2 ** math.floor(math.log2(n))
    return _paper_slopes(closest) + _paper_slopes(2 * closest)[0::2][: n - closest]


@pytest.mark.parametrize("heads", [1, 2, 3, 4, 5, 6, 7, 12, 16, 20, 24, 32])
def test_alibi_slopes_match_paper_recipe(heads):
    slopes = alibi_slopes(heads)
    assert slopes.shape == (heads,)
    assert_close(slopes, torch.tensor(_paper_slopes(heads), dtype=torch.float32), rtol=1e-6, atol=0)
    assert len(set(slopes.tolist())) == heads, "every head needs its own slope"


def test_alibi_slopes_16_heads_and_dtype():
    slopes = alibi_slopes(16)
    assert slopes.dtype == torch.float32
    assert_close(slopes, torch.tensor([2 ** (-0.5 * (i + 1)) for i in range(16)]), rtol=0, atol=1e-7)


def test_alibi_bias_is_symmetric_distance_penalty():
    slopes = torch.tensor([0.5, 0.25])
    bias = alibi_bias(slopes, 4)
    assert bias.shape == (2, 4, 4)
    assert_close(bias, bias.transpose(-1, -2))
    assert (bias.diagonal(dim1=-2, dim2=-1) == 0).all()
    assert bias[0, 0, 3].item() == pytest.approx(-1.5)  # -0.5 * |0 - 3|
    assert bias[1, 2, 0].item() == pytest.approx(-0.5)  # -0.25 * |2 - 0|


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def mlm(tokenizer):
    torch.manual_seed(0)
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer), hidden_dropout_prob=0.0)
    return BriskBertForMaskedLM(config).eval()


@pytest.fixture(scope="module")
def mlm_batch(tokenizer, sentences):
    """Real sentences of varied length, padded, with 30% of the non-special tokens masked as MLM labels."""
    batch = dict(tokenizer(sentences[:9], padding=True, truncation=True, max_length=128, return_tensors="pt"))
    special = torch.tensor(
        [tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True) for ids in batch["input_ids"].tolist()]
    ).bool()
    generator = torch.Generator().manual_seed(0)
    chosen = (torch.rand(batch["input_ids"].shape, generator=generator) < 0.3) & ~special & batch["attention_mask"].bool()
    labels = torch.where(chosen, batch["input_ids"], torch.full_like(batch["input_ids"], -100))
    batch["input_ids"] = batch["input_ids"].masked_fill(chosen, tokenizer.mask_token_id)
    batch["labels"] = labels
    assert chosen.sum() > 10
    return batch


def _run_with_grads(model, batch, implementation):
    """Forward + backward of the MLM loss; returns (hidden_states, logits, loss, input-embedding grad, param grads)."""
    model.set_attn_implementation(implementation)
    model.zero_grad(set_to_none=True)
    embeds = model.get_input_embeddings()(batch["input_ids"]).detach().requires_grad_(True)
    out = model(
        inputs_embeds=embeds,
        attention_mask=batch["attention_mask"],
        token_type_ids=batch["token_type_ids"],
        labels=batch["labels"],
        output_hidden_states=True,
    )
    out.loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.set_attn_implementation("sdpa")
    return out.hidden_states, out.logits.detach(), out.loss.detach(), embeds.grad.detach(), grads


@pytest.fixture(scope="module")
def eager_reference(mlm, mlm_batch):
    return _run_with_grads(mlm, mlm_batch, "eager")


def _assert_hidden_close(actual, expected, what):
    assert len(actual) == len(expected)
    for layer, (a, e) in enumerate(zip(actual, expected)):
        diff = (a.detach() - e.detach()).abs().max().item()
        assert diff <= ATOL, f"{what} hidden state {layer}: max abs diff {diff:.3g}"


def _assert_logits_close(actual, expected, model):
    # logits = decoder(head(hidden)): a hidden-state difference within ATOL can grow by up to the largest decoder
    # row norm, so the absolute tolerance scales with it (1x for rows of norm <= 1, as at std-0.02 init).
    amplification = max(1.0, model.decoder.weight.detach().norm(dim=1).max().item())
    assert_close(actual, expected, rtol=ATOL, atol=ATOL * amplification)


def _assert_grads_close(actual, expected):
    assert actual.keys() == expected.keys()
    assert len(actual) > 10
    for name in expected:
        assert_close(actual[name], expected[name], rtol=ATOL, atol=ATOL, msg=lambda m: f"grad of {name}: {m}")


# ------------------------------------------------------------------------------------------ parity


def test_sdpa_matches_eager_forward_and_backward(mlm, mlm_batch, eager_reference):
    hidden, logits, loss, input_grad, grads = _run_with_grads(mlm, mlm_batch, "sdpa")
    ref_hidden, ref_logits, ref_loss, ref_input_grad, ref_grads = eager_reference
    _assert_hidden_close(hidden, ref_hidden, "sdpa")
    # logits reach |x| ~ tens, so compare them (and gradients) with a relative term as well
    _assert_logits_close(logits, ref_logits, mlm)
    assert_close(loss, ref_loss, rtol=ATOL, atol=ATOL)
    assert_close(input_grad, ref_input_grad, rtol=ATOL, atol=ATOL)
    assert input_grad[mlm_batch["attention_mask"] == 0].abs().max() == 0, "padding must get no gradient"
    assert input_grad.abs().max() > 0
    _assert_grads_close(grads, ref_grads)


def test_flex_attention_cpu_forward_matches_eager_and_refuses_backward(mlm, mlm_batch, eager_reference):
    """Compiles flex (~10 s per input shape on CPU): the only CPU test in the suite that runs the compiled kernel.
    A second, different shape checks the per-shape static kernels (torch 2.13's CPU inductor cannot build the
    dynamic-shape one a second shape would otherwise trigger)."""
    inputs = {k: mlm_batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    smaller = {k: v[:3, : int(v[:3].ne(0).sum(1).max())] for k, v in inputs.items() if k != "token_type_ids"}
    mlm.set_attn_implementation("flex_attention")
    try:
        with pytest.raises(NotImplementedError, match="sdpa"):
            mlm(**inputs)  # grad enabled: parameters require grad, so the attention input does too
        with torch.no_grad():
            out = mlm(**inputs, output_hidden_states=True)
            second = mlm.model(**smaller).last_hidden_state
        mlm.set_attn_implementation("sdpa")
        with torch.no_grad():
            second_ref = mlm.model(**smaller).last_hidden_state
    finally:
        mlm.set_attn_implementation("sdpa")
    ref_hidden, ref_logits = eager_reference[0], eager_reference[1]
    _assert_hidden_close(out.hidden_states, ref_hidden, "flex_attention")
    _assert_logits_close(out.logits, ref_logits, mlm)
    real = smaller["attention_mask"].bool()
    assert_close(second[real], second_ref[real], rtol=0, atol=ATOL)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device (and flex_attention's backward has no CPU kernel)")
@pytest.mark.parametrize("backend", ["sdpa", "flex_attention"])
def test_cuda_forward_and_backward_match_eager(backend, mlm, mlm_batch):
    model = mlm.to("cuda")
    batch = {k: v.to("cuda") for k, v in mlm_batch.items()}
    try:
        ref = _run_with_grads(model, batch, "eager")
        got = _run_with_grads(model, batch, backend)
    finally:
        mlm.to("cpu")
    _assert_hidden_close(got[0], ref[0], f"{backend} cuda")
    _assert_logits_close(got[1], ref[1], mlm)
    assert_close(got[3], ref[3], rtol=1e-4, atol=1e-4)
    _assert_grads_close(got[4], ref[4])


@pytest.mark.skipif(not (HAS_CUDA and HAS_FLASH_ATTN), reason="flash_attention_2 needs CUDA and the flash-attn package")
def test_flash_attention_2_matches_eager_on_cuda(mlm, mlm_batch):
    model = mlm.to("cuda")
    batch = {k: v.to("cuda") for k, v in mlm_batch.items()}
    try:
        ref = _run_with_grads(model, batch, "eager")
        got = _run_with_grads(model, batch, "flash_attention_2")
    finally:
        mlm.to("cpu")
    # flash-attn computes in bf16: compare loosely
    for a, e in zip(got[0], ref[0]):
        assert_close(a, e, rtol=5e-2, atol=5e-2)
    assert_close(got[2], ref[2], rtol=1e-2, atol=1e-2)


def test_flex_attention_dropout_in_training_raises(tokenizer, sentences):
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer), attention_probs_dropout_prob=0.1)
    model = BriskBertModel(config).train()
    model.set_attn_implementation("flex_attention")
    batch = tokenizer(sentences[:2], padding=True, return_tensors="pt")
    # no_grad so that on CPU the (earlier) missing-backward check does not fire first
    with torch.no_grad(), pytest.raises(ValueError, match="attention_probs_dropout_prob=0"):
        model(**batch)


def test_unknown_attention_backend_raises(tokenizer, sentences):
    from briskbert.modeling.attention import build_attention
    from briskbert.modeling.unpadding import unpad_batch

    batch = unpad_batch((1, 4), torch.device("cpu"))
    with pytest.raises(ValueError, match="no attention backend 'xformers'"):
        build_attention("xformers", batch, 4, torch.device("cpu"))


# --------------------------------------------------------------------------------------- long inputs


def test_tiny_model_runs_8x_longer_input_with_sdpa_equal_to_eager(tokenizer, sentences):
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer))
    model = BriskBertModel(config).eval()
    body = [t for s in sentences for t in tokenizer(s, add_special_tokens=False)["input_ids"]]
    while len(body) < 1022:
        body = body + body
    long_ids = [tokenizer.cls_token_id] + body[:1022] + [tokenizer.sep_token_id]
    short_ids = [tokenizer.cls_token_id] + body[100:700] + [tokenizer.sep_token_id]
    ids = torch.zeros(2, 1024, dtype=torch.long)
    mask = torch.zeros(2, 1024, dtype=torch.long)
    ids[0], mask[0] = torch.tensor(long_ids), 1
    ids[1, : len(short_ids)], mask[1, : len(short_ids)] = torch.tensor(short_ids), 1
    outputs = {}
    with torch.no_grad():
        for implementation in ("sdpa", "eager"):
            model.set_attn_implementation(implementation)
            outputs[implementation] = model(input_ids=ids, attention_mask=mask)
    sdpa, eager = outputs["sdpa"], outputs["eager"]
    assert sdpa.last_hidden_state.shape == (2, 1024, config.hidden_size)
    assert torch.isfinite(sdpa.last_hidden_state).all() and torch.isfinite(eager.last_hidden_state).all()
    diff = (sdpa.last_hidden_state - eager.last_hidden_state).abs().max().item()
    assert diff <= ATOL, f"sdpa vs eager at 1024 tokens: {diff:.3g}"
    assert_close(sdpa.pooler_output, eager.pooler_output, rtol=0, atol=ATOL)
    assert (sdpa.last_hidden_state[1, len(short_ids) :] == 0).all()
    # a token attends across the whole 1024-token sequence: changing the last token moves the first output
    ids_changed = ids.clone()
    ids_changed[0, 1022] = tokenizer.mask_token_id
    with torch.no_grad():
        changed = model(input_ids=ids_changed, attention_mask=mask).last_hidden_state
    assert (changed[0, 0] - eager.last_hidden_state[0, 0]).abs().max() > 0
    assert_close(changed[1], eager.last_hidden_state[1], rtol=0, atol=ATOL)  # the other row is unaffected


# ------------------------------------------------------------------------------------ attention probs


@pytest.fixture(scope="module")
def eager_model(tokenizer):
    torch.manual_seed(0)
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer))
    model = BriskBertModel(config).eval()
    model.set_attn_implementation("eager")
    return model


def test_output_attentions_on_eager(eager_model, make_batch, sentences):
    batch = make_batch(sentences[:5])
    lengths = batch["attention_mask"].sum(1)
    with torch.no_grad():
        out = eager_model(**batch, output_attentions=True)
    config = eager_model.config
    assert len(out.attentions) == config.num_hidden_layers
    L = int(lengths.max())
    for probs in out.attentions:
        assert probs.shape == (5, config.num_attention_heads, L, L)
        for i, n in enumerate(lengths.tolist()):
            real = probs[i, :, :n, :]  # real queries
            assert_close(real[..., :n].sum(-1), torch.ones(config.num_attention_heads, n), rtol=0, atol=1e-5)
            assert (real[..., n:] == 0).all(), "padding keys must get zero weight"
            assert (real >= 0).all()


def test_eager_attention_probs_follow_alibi_for_equal_keys(eager_model):
    # all tokens identical -> q.k is the same for every key, so the weights are softmax(-slope * |i - j|)
    ids = torch.full((1, 6), 2000)
    with torch.no_grad():
        probs = eager_model(input_ids=ids, output_attentions=True).attentions[0][0]  # [heads, 6, 6]
    expected = alibi_bias(alibi_slopes(eager_model.config.num_attention_heads), 6).softmax(-1)
    assert_close(probs, expected, rtol=1e-5, atol=1e-5)


def test_output_attentions_on_sdpa_runs_that_call_on_eager_and_warns_once(tokenizer, sentences, caplog):
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer))
    model = BriskBertModel(config).eval()
    model.set_attn_implementation("sdpa")
    batch = tokenizer(sentences[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        with caplog.at_level("WARNING"):
            first = model(**batch, output_attentions=True)
            second = model(**batch, output_attentions=True)
        assert model.config._attn_implementation == "sdpa"  # only those calls ran on eager
        model.set_attn_implementation("eager")
        eager = model(**batch, output_attentions=True)
    assert sum("run on the eager backend" in record.message for record in caplog.records) <= 1
    for a, b, c in zip(first.attentions, second.attentions, eager.attentions):
        assert a.shape == (3, config.num_attention_heads, *batch["input_ids"].shape[1:], batch["input_ids"].shape[1])
        assert_close(a, c)
        assert_close(b, c)
    padding = batch["attention_mask"] == 0
    assert (first.attentions[0].permute(0, 2, 1, 3)[padding] == 0).all(), "padding queries get all-zero rows"
    assert_close(first.last_hidden_state, eager.last_hidden_state, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------ bf16


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device"))]


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_autocast_keeps_layernorm_in_bf16_and_stays_close_to_fp32(device, tokenizer, make_batch, sentences):
    torch.manual_seed(0)
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer))
    model = BriskBertModel(config).eval().to(device)
    norms = [m for m in model.modules() if isinstance(m, LowPrecisionLayerNorm)]
    assert len(norms) == 1 + 2 * config.num_hidden_layers
    seen = []
    handles = [norm.register_forward_hook(lambda mod, args, out: seen.append(out.dtype)) for norm in norms]
    batch = {k: v.to(device) for k, v in make_batch(sentences[:8]).items()}
    try:
        with torch.no_grad():
            fp32 = model(**batch).last_hidden_state
            assert seen and all(d == torch.float32 for d in seen), "without autocast LayerNorm stays fp32"
            seen.clear()
            with torch.autocast(device, dtype=torch.bfloat16):
                bf16 = model(**batch).last_hidden_state
    finally:
        for handle in handles:
            handle.remove()
    assert len(seen) == len(norms)
    assert all(d == torch.bfloat16 for d in seen), seen
    assert bf16.dtype == torch.bfloat16
    assert torch.isfinite(bf16.float()).all()
    mask = batch["attention_mask"].bool()
    relative = (bf16.float() - fp32)[mask].norm() / fp32[mask].norm()
    assert relative < 5e-2, f"bf16 vs fp32 relative error {relative:.3g}"


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_training_step_sdpa_matches_eager(device, tokenizer, make_batch, sentences):
    """Under bf16 autocast with gradients, sdpa runs its attention in fp32 on CPU (faster backward there); the
    output keeps the autocast dtype and loss and gradients agree with the eager reference (on CUDA too)."""
    torch.manual_seed(0)
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer), hidden_dropout_prob=0.0)
    model = BriskBertForMaskedLM(config).train().to(device)
    batch = make_batch(sentences[:8])
    labels = torch.where((torch.rand(batch["input_ids"].shape) < 0.3) & batch["attention_mask"].bool(),
                         batch["input_ids"], -100)
    batch, labels = {k: v.to(device) for k, v in batch.items()}, labels.to(device)
    results = {}
    for backend in ("eager", "sdpa"):
        model.set_attn_implementation(backend)
        model.zero_grad()
        with torch.autocast(device, dtype=torch.bfloat16):
            out = model(**batch, labels=labels, output_hidden_states=True)
        out.loss.backward()
        results[backend] = (out.loss.detach(), out.hidden_states[-1].detach(), model.model.layers[0].attention.Wqkv.weight.grad.clone())
    model.set_attn_implementation("sdpa")
    (eager_loss, eager_hidden, eager_grad), (sdpa_loss, sdpa_hidden, sdpa_grad) = results["eager"], results["sdpa"]
    assert sdpa_hidden.dtype == torch.bfloat16
    assert_close(sdpa_loss, eager_loss, rtol=2e-2, atol=2e-2)
    assert (sdpa_grad - eager_grad).norm() / eager_grad.norm() < 5e-2


# ---------------------------------------------------------------------------- gradient checkpointing


def test_gradient_checkpointing_gives_same_gradients(tokenizer, mlm_batch):
    torch.manual_seed(0)
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer), hidden_dropout_prob=0.0)
    model = BriskBertForMaskedLM(config).train()
    calls = []
    # checkpointing wraps the layer's forward (hooks on the layer itself stay outside) and may stop recomputing
    # early, so watch the layer's first submodule
    model.model.layers[0].attention.Wqkv.register_forward_hook(lambda *args: calls.append(1))

    def grads():
        model.zero_grad(set_to_none=True)
        calls.clear()
        loss = model(**mlm_batch).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss_plain, grads_plain = grads()
    assert len(calls) == 1
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    loss_ckpt, grads_ckpt = grads()
    assert len(calls) == 2, "with checkpointing the layer's forward must run again during backward"
    assert_close(loss_ckpt, loss_plain, rtol=0, atol=1e-6)
    assert grads_ckpt.keys() == grads_plain.keys() and len(grads_plain) > 10
    for name in grads_plain:
        assert_close(grads_ckpt[name], grads_plain[name], rtol=1e-6, atol=1e-6, msg=lambda m: f"{name}: {m}")


def test_sdpa_backend_stays_on_the_fused_cpu_kernel(tokenizer, sentences):
    """Not a timing test: checks which kernel runs. A 3-D ALiBi mask once sent CPU SDPA to its math path."""
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer))
    model = BriskBertModel(config).eval()
    batch = tokenizer(sentences[:6], padding=True, return_tensors="pt")
    with torch.no_grad(), torch.profiler.profile() as profile:
        model(**batch)
    kernels = {event.key for event in profile.key_averages()}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in kernels, sorted(k for k in kernels if "attention" in k)
    assert "aten::_scaled_dot_product_attention_math" not in kernels
