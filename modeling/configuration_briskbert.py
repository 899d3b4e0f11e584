"""BriskBertConfig: the one typed place every BriskBERT size and switch comes from.

Served on the Hub beside the weights, so it imports only transformers and the heads list beside it.
"""

from transformers import PreTrainedConfig

from .heads import AUTO_MAP

# Named sizes. `base` and `large` match BERT's shapes; the GLU width equals BERT's intermediate size
# (MosaicBERT-base uses 3072 too), so a GLU layer costs ~1.3x the FLOPs of a BERT layer.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
    "mini": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "small": dict(hidden_size=512, num_hidden_layers=6, num_attention_heads=8, intermediate_size=2048),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}

CLASSIFIER_POOLINGS = ("cls", "mean")
# The MosaicBERT recipe first; the alternatives exist so BERT checkpoints convert exactly (briskbert-convert).
POSITION_EMBEDDING_TYPES = ("alibi", "absolute")
MLP_TYPES = ("glu", "mlp")


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that is at least `value`."""
    return -(-value // multiple) * multiple


class BriskBertConfig(PreTrainedConfig):
    r"""
    Configuration of a BriskBERT encoder (MosaicBERT recipe: ALiBi, GeGLU, post-LN, unpadded).

    Args:
        vocab_size: tokenizer vocabulary size; rounded up to a multiple of `pad_vocab_size_multiple`
            so the embedding and decoder matmuls hit aligned shapes (MosaicBERT, Portes et al. 2023).
        hidden_size, num_hidden_layers, num_attention_heads: encoder shape.
        intermediate_size: width of the MLP (for `glu` the fused input projection is twice this).
        hidden_act: activation of the MLP (the GLU gate: `gelu` gives GeGLU) and of the MLM head.
        position_embedding_type: `alibi` (attention bias -slope * |i - j|, no position embeddings) or
            `absolute` (BERT's learned position embeddings, positions restarting at 0 in every sequence,
            also in every document of a packed row).
        max_position_embeddings: number of learned positions (longest sequence) with `absolute`; unused by ALiBi.
        mlp_type: `glu` (GeGLU, one fused input projection, MosaicBERT) or `mlp` (BERT's dense + activation +
            dense).
        hidden_dropout_prob: dropout after the embeddings, attention output and MLP.
        attention_probs_dropout_prob: dropout on attention probabilities (0 in MosaicBERT, which keeps
            every fused kernel usable; the FlexAttention backend refuses a non-zero value in training).
        type_vocab_size: number of segment (token type) ids.
        layer_norm_eps, initializer_range: as in BERT.
        classifier_pooling: `cls` (BERT pooler on the first token) or `mean` (mean of real tokens),
            used by the sequence-classification and multiple-choice heads.
        classifier_dropout: dropout before task classifiers; defaults to `hidden_dropout_prob`.
        sparse_prediction: in training with labels, run the MLM decoder only on masked positions.
        attention_gate: gated attention (Bondarenko et al. 2023, "Quantizable Transformers"): each head's output
            is scaled per token by sigmoid(Linear(hidden)), so a head can output ~nothing where it would otherwise
            attend to [SEP] or punctuation to do nothing, the habit that grows the outlier activations int8 loses
            accuracy on. Off by default and in every converted model (their weights have no gate).
        pad_vocab_size_multiple: see `vocab_size`.

    Build a named size with `BriskBertConfig.from_preset("small", vocab_size=...)`.

    As every transformers config it holds any sizes; that the heads divide the hidden size is checked where a
    model is built from it.
    """

    model_type = "briskbert"

    vocab_size: int = 30528
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.0
    type_vocab_size: int = 2
    position_embedding_type: str = "alibi"
    max_position_embeddings: int = 512
    mlp_type: str = "glu"
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int | None = 0
    classifier_pooling: str = "cls"
    classifier_dropout: float | None = None
    sparse_prediction: bool = True
    attention_gate: bool = False
    pad_vocab_size_multiple: int = 64
    tie_word_embeddings: bool = True
    auto_map: dict[str, str] | None = None

    def __post_init__(self, **kwargs):
        if self.auto_map is None:
            self.auto_map = dict(AUTO_MAP)
        self.vocab_size = round_up(self.vocab_size, self.pad_vocab_size_multiple)
        if self.classifier_pooling not in CLASSIFIER_POOLINGS:
            raise ValueError(
                f"classifier_pooling must be one of {CLASSIFIER_POOLINGS}, got {self.classifier_pooling!r}."
            )
        if self.position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise ValueError(
                f"position_embedding_type must be one of {POSITION_EMBEDDING_TYPES}, got "
                f"{self.position_embedding_type!r}: 'alibi' is the BriskBERT recipe, 'absolute' is BERT's learned "
                f"position embeddings."
            )
        if self.mlp_type not in MLP_TYPES:
            raise ValueError(
                f"mlp_type must be one of {MLP_TYPES}, got {self.mlp_type!r}: 'glu' is the BriskBERT recipe "
                f"(GeGLU), 'mlp' is BERT's feed-forward."
            )
        if self.position_embedding_type == "absolute" and self.max_position_embeddings < 1:
            raise ValueError(
                f"max_position_embeddings must be at least 1 with absolute positions, got "
                f"{self.max_position_embeddings}: set it to the longest sequence the model reads (BERT: 512)."
            )
        super().__post_init__(**kwargs)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "BriskBertConfig":
        if name not in PRESETS:
            raise ValueError(f"Unknown BriskBERT preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        # transformers only warns when a checkpoint of another architecture is loaded into this config,
        # then initialises every weight at random; refuse instead.
        model_type = config_dict.get("model_type")
        if model_type not in (None, cls.model_type):
            raise ValueError(
                f"This checkpoint is a {model_type!r} model, not BriskBERT ({cls.model_type!r}); its weights do "
                f"not fit BriskBERT's layers. Load it with its own class (e.g. transformers.AutoModel) or "
                f"convert it to BriskBERT first."
            )
        return super().from_dict(config_dict, **kwargs)
