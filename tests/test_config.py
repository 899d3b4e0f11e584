"""BriskBertConfig: presets, vocabulary rounding, validation, and refusing checkpoints of other architectures."""

import pytest
import torch
from transformers import BertConfig, BertModel

from briskbert import PRESETS, BriskBertConfig, BriskBertForMaskedLM, BriskBertModel


def test_all_presets_are_defined():
    assert {"tiny", "mini", "small", "base", "large"} <= set(PRESETS)


@pytest.mark.parametrize("name", ["tiny", "mini", "small", "base", "large"])
def test_preset_builds_config_with_its_shape(name):
    config = BriskBertConfig.from_preset(name)
    for key, value in PRESETS[name].items():
        assert getattr(config, key) == value, key
    assert config.hidden_size % config.num_attention_heads == 0
    assert config.head_dim * config.num_attention_heads == config.hidden_size
    assert config.model_type == "briskbert"


def test_base_and_large_match_bert_shapes():
    base = BriskBertConfig.from_preset("base")
    assert (base.num_hidden_layers, base.hidden_size, base.num_attention_heads) == (12, 768, 12)
    assert base.intermediate_size == 3072  # GLU width = BERT's intermediate size
    large = BriskBertConfig.from_preset("large")
    assert (large.num_hidden_layers, large.hidden_size, large.num_attention_heads) == (24, 1024, 16)
    assert large.head_dim == 64 == base.head_dim


@pytest.mark.parametrize("name", ["tiny", "mini"])
def test_small_presets_build_a_working_model(name):
    config = BriskBertConfig.from_preset(name, vocab_size=1000)
    model = BriskBertModel(config).eval()
    assert len(model.layers) == config.num_hidden_layers
    # GeGLU: the fused input projection is twice the intermediate size, no bias
    assert model.layers[0].mlp.Wi.weight.shape == (2 * config.intermediate_size, config.hidden_size)
    assert model.layers[0].mlp.Wi.bias is None
    ids = torch.randint(1, 1000, (2, 7))
    with torch.no_grad():
        out = model(input_ids=ids)
    assert out.last_hidden_state.shape == (2, 7, config.hidden_size)
    assert torch.isfinite(out.last_hidden_state).all()


def test_base_preset_parameter_count_is_bert_base_like():
    # build on the meta device: the shapes are real, no memory or init time is spent
    config = BriskBertConfig.from_preset("base", vocab_size=30522)
    with torch.device("meta"):
        model = BriskBertModel(config)
    n = sum(p.numel() for p in model.parameters())
    # BERT-base's encoder+embeddings is ~109M; GeGLU layers add ~1/3 of the MLP -> ~137M
    assert 120e6 < n < 150e6, n


@pytest.mark.parametrize(
    "given, expected", [(30522, 30528), (30528, 30528), (1, 64), (64, 64), (65, 128), (50265, 50304)]
)
def test_vocab_size_rounds_up_to_multiple_of_64(given, expected):
    assert BriskBertConfig.from_preset("tiny", vocab_size=given).vocab_size == expected
    assert BriskBertConfig(vocab_size=given, hidden_size=64, num_attention_heads=4).vocab_size == expected


def test_vocab_rounding_follows_pad_vocab_size_multiple():
    config = BriskBertConfig.from_preset("tiny", vocab_size=30522, pad_vocab_size_multiple=128)
    assert config.vocab_size == 30592


def test_vocab_size_survives_save_and_load(tmp_path):
    config = BriskBertConfig.from_preset("tiny", vocab_size=30522)
    config.save_pretrained(tmp_path)
    loaded = BriskBertConfig.from_pretrained(tmp_path)
    assert loaded.vocab_size == 30528
    assert loaded.hidden_size == 64 and loaded.num_hidden_layers == 2


def test_tokenizer_vocab_fits_rounded_vocab(tokenizer):
    config = BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer))
    assert config.vocab_size == 30528 >= len(tokenizer)
    assert config.vocab_size % 64 == 0


def test_hidden_size_not_divisible_by_heads_raises_when_the_model_is_built():
    # a config holds any values (transformers' convention: build, save, reload); the model refuses the shape
    config = BriskBertConfig(hidden_size=100, num_attention_heads=12, num_hidden_layers=1, intermediate_size=8)
    assert BriskBertConfig.from_dict(config.to_dict()).hidden_size == 100
    with pytest.raises(ValueError, match=r"hidden_size \(100\) must be divisible by num_attention_heads \(12\)"):
        BriskBertModel(config)
    with pytest.raises(ValueError, match="divisible"):
        BriskBertForMaskedLM(BriskBertConfig.from_preset("tiny", num_attention_heads=5))  # 64 % 5 != 0


def test_bad_classifier_pooling_raises():
    with pytest.raises(ValueError, match="classifier_pooling"):
        BriskBertConfig.from_preset("tiny", classifier_pooling="max")


def test_unknown_preset_raises():
    with pytest.raises(ValueError, match=r"Unknown BriskBERT preset 'huge'.*tiny"):
        BriskBertConfig.from_preset("huge")


def test_preset_overrides_apply():
    config = BriskBertConfig.from_preset("tiny", num_hidden_layers=3, hidden_dropout_prob=0.0)
    assert config.num_hidden_layers == 3 and config.hidden_dropout_prob == 0.0
    assert config.hidden_size == PRESETS["tiny"]["hidden_size"]


def test_config_from_saved_bert_config_raises(tmp_path):
    BertConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=4, intermediate_size=128).save_pretrained(
        tmp_path
    )
    with pytest.raises(ValueError, match="'bert'"):
        BriskBertConfig.from_pretrained(tmp_path)


def test_model_with_bert_config_raises_type_error():
    with pytest.raises(TypeError, match="BriskBertConfig"):
        BriskBertModel(BertConfig())
    with pytest.raises(TypeError, match="model_type='bert'"):
        BriskBertForMaskedLM(BertConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=4))


def test_model_from_saved_bert_checkpoint_raises(tmp_path):
    bert = BertModel(
        BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    )
    bert.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="bert"):
        BriskBertModel.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not BriskBERT"):
        BriskBertForMaskedLM.from_pretrained(tmp_path)


def test_config_auto_map_default():
    config = BriskBertConfig.from_preset("tiny")
    assert config.auto_map["AutoConfig"] == "configuration_briskbert.BriskBertConfig"
    assert config.auto_map["AutoModelForMaskedLM"] == "modeling_briskbert.BriskBertForMaskedLM"
