"""The BriskBERT model: configuration, unpadding, attention backends, layers and heads (self-contained: torch and
transformers only; it is what the Hub serves). `HEADS` lists the model classes."""

from .configuration_briskbert import PRESETS, BriskBertConfig
from .heads import HEADS
from .modeling_briskbert import *  # noqa: F403  (BriskBertPreTrainedModel and every class of HEADS)
from .modeling_briskbert import __all__ as _MODEL_CLASSES

__all__ = ["PRESETS", "HEADS", "BriskBertConfig", *_MODEL_CLASSES]
