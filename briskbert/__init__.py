"""BriskBERT: a BERT-style encoder for fast, cheap pretraining, loadable anywhere through transformers.

Importing this package registers every BriskBERT class with transformers' Auto classes and marks them
so that `save_pretrained` writes the model's code beside its weights.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .modeling import (
    PRESETS,
    BriskBertConfig,
    BriskBertForMaskedLM,
    BriskBertForMultipleChoice,
    BriskBertForQuestionAnswering,
    BriskBertForSequenceClassification,
    BriskBertForTokenClassification,
    BriskBertModel,
    BriskBertPreTrainedModel,
)

__version__ = "0.1.0"

AUTO_CLASSES = {
    AutoModel: BriskBertModel,
    AutoModelForMaskedLM: BriskBertForMaskedLM,
    AutoModelForSequenceClassification: BriskBertForSequenceClassification,
    AutoModelForTokenClassification: BriskBertForTokenClassification,
    AutoModelForQuestionAnswering: BriskBertForQuestionAnswering,
    AutoModelForMultipleChoice: BriskBertForMultipleChoice,
}


def _register() -> None:
    AutoConfig.register(BriskBertConfig.model_type, BriskBertConfig, exist_ok=True)
    BriskBertConfig.register_for_auto_class()
    for auto_class, model_class in AUTO_CLASSES.items():
        auto_class.register(BriskBertConfig, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_class.__name__)


_register()

__all__ = [
    "PRESETS",
    "BriskBertConfig",
    "BriskBertPreTrainedModel",
    "BriskBertModel",
    "BriskBertForMaskedLM",
    "BriskBertForSequenceClassification",
    "BriskBertForTokenClassification",
    "BriskBertForQuestionAnswering",
    "BriskBertForMultipleChoice",
]
