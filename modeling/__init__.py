"""The BriskBERT model: configuration, attention backends and task heads (self-contained; served on the Hub)."""

from .configuration_briskbert import PRESETS, BriskBertConfig
from .modeling_briskbert import (
    BriskBertForMaskedLM,
    BriskBertForMultipleChoice,
    BriskBertForQuestionAnswering,
    BriskBertForSequenceClassification,
    BriskBertForTokenClassification,
    BriskBertModel,
    BriskBertPreTrainedModel,
)
