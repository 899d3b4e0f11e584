"""The BriskBERT model classes, listed once: registration with transformers' Auto classes, config.json's `auto_map`,
checkpoint conversion, export and model cards all derive from `HEADS`. Served on the Hub beside the model code
(plain data: no imports).
"""

from dataclasses import dataclass

PREFIX = "BriskBert"


@dataclass(frozen=True)
class Head:
    name: str  # the class in modeling_briskbert.py
    auto_class: str  # the transformers Auto class that builds it from a BriskBertConfig
    outputs: tuple[str, ...]  # what it returns, in order (also the exported graph's output names)
    pipeline_tag: str | None  # the Hub's pipeline for it; None where the Hub has none
    task_type: str  # the model-index task type of its evaluation results on a model card

    @property
    def suffix(self) -> str:
        """"Model", "ForMaskedLM", ...: the part every transformers encoder's class of this head shares."""
        return self.name[len(PREFIX):]

    @property
    def bert_name(self) -> str:
        """The transformers BERT class this head stands in for, with the same outputs (checkpoint conversion)."""
        return f"Bert{self.suffix}"


HEADS = (
    Head("BriskBertModel", "AutoModel", ("last_hidden_state", "pooler_output"), "feature-extraction",
         "feature-extraction"),
    Head("BriskBertForMaskedLM", "AutoModelForMaskedLM", ("logits",), "fill-mask", "fill-mask"),
    Head("BriskBertForSequenceClassification", "AutoModelForSequenceClassification", ("logits",),
         "text-classification", "text-classification"),
    Head("BriskBertForTokenClassification", "AutoModelForTokenClassification", ("logits",), "token-classification",
         "token-classification"),
    Head("BriskBertForQuestionAnswering", "AutoModelForQuestionAnswering", ("start_logits", "end_logits"),
         "question-answering", "question-answering"),
    Head("BriskBertForMultipleChoice", "AutoModelForMultipleChoice", ("logits",), None, "multiple-choice"),
)

# Written into every config.json so that a saved folder (or Hub repo) holding these code files loads with any Auto
# class and trust_remote_code=True, whichever head was saved.
AUTO_MAP = {"AutoConfig": "configuration_briskbert.BriskBertConfig",
            **{head.auto_class: f"modeling_briskbert.{head.name}" for head in HEADS}}


def head_named(name: str) -> Head:
    for head in HEADS:
        if head.name == name:
            return head
    raise ValueError(f"{name!r} is not a BriskBERT class; the heads are {[head.name for head in HEADS]}.")


def head_for_architecture(architecture: str) -> Head:
    """The head an architecture name is ("BertForTokenClassification" -> BriskBertForTokenClassification); a bare
    encoder when none matches."""
    for head in sorted(HEADS, key=lambda head: head.suffix == "Model"):  # "...Model" is the fallback, checked last
        if architecture.endswith(head.suffix):
            return head
    return HEADS[0]
