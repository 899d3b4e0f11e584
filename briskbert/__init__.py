"""BriskBERT: a BERT-style encoder for fast, cheap pretraining, loadable anywhere through transformers.

Importing this package registers every BriskBERT class (`modeling.HEADS`) with transformers' Auto classes and marks
them so that `save_pretrained` writes the model's code beside its weights.
"""

import os

import transformers

# In a clone, modeling/, trainers/, scripts/ ... sit beside this folder and pyproject.toml maps them into briskbert.*.
# An editable install resolves that mapping; with a wheel installed, though, Python run from the clone's root finds
# this folder first and nothing maps the rest. Looking beside it too makes the checkout import as itself either way.
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_CHECKOUT, "pyproject.toml")) and os.path.isdir(os.path.join(_CHECKOUT, "modeling")):
    __path__.append(_CHECKOUT)  # noqa: F821  (a package's own search path)

from . import modeling  # noqa: E402
from .modeling import *  # noqa: F403  (the config, PRESETS, HEADS and every model class)
from .modeling import HEADS, BriskBertConfig
from .modeling import __all__ as _MODELING_NAMES
from .trainers.inference.onnx_encoder import OnnxEncoder
from .trainers.inference.quantize import load_quantized, quantize, save_quantized

__version__ = "0.2.0"

# transformers Auto class -> the BriskBERT class it builds from a BriskBertConfig
AUTO_CLASSES = {getattr(transformers, head.auto_class): getattr(modeling, head.name) for head in HEADS}


def _register() -> None:
    transformers.AutoConfig.register(BriskBertConfig.model_type, BriskBertConfig, exist_ok=True)
    BriskBertConfig.register_for_auto_class()
    for auto_class, model_class in AUTO_CLASSES.items():
        auto_class.register(BriskBertConfig, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_class.__name__)


_register()

__all__ = [*_MODELING_NAMES, "AUTO_CLASSES", "quantize", "save_quantized", "load_quantized", "OnnxEncoder"]
