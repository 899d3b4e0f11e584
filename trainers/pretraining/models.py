"""The tokenizer and MLM model a pretraining run starts from: a BriskBERT of a preset, transformers' BertForMaskedLM
of the same shape (the baseline), or a pretrained checkpoint whose vocabulary may grow with the domain's pieces."""

from itertools import islice

from transformers import AutoModelForMaskedLM, AutoTokenizer, BertConfig, BertForMaskedLM

from ...modeling import PRESETS, BriskBertConfig, BriskBertForMaskedLM
from ..data.tokenizer import extend_tokenizer, grow_embeddings
from ..resources import data_path

MODEL_TYPES = ("briskbert", "bert")


def build_tokenizer_and_model(config, corpus, echo=print):
    """(tokenizer, model) for a `PretrainConfig`; `corpus` feeds `extend_tokenizer_tokens`."""
    tokenizer = AutoTokenizer.from_pretrained(data_path(config.tokenizer or config.init_from), trust_remote_code=True)
    if config.init_from:
        model = AutoModelForMaskedLM.from_pretrained(data_path(config.init_from), trust_remote_code=True)
        if config.extend_tokenizer_tokens:
            texts = [t for t in islice((row[config.text_column] for row in corpus), 200_000) if t]
            extended, new_tokens = extend_tokenizer(tokenizer, texts, config.extend_tokenizer_tokens)
            grow_embeddings(model, tokenizer, extended)
            echo(f"tokenizer extended by {len(new_tokens)} domain pieces: {new_tokens[:12]} ...")
            tokenizer = extended
    elif config.model_type == "bert":
        shape = PRESETS[config.preset]
        model = BertForMaskedLM(BertConfig(
            vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, max_position_embeddings=512,
            hidden_size=shape["hidden_size"], num_hidden_layers=shape["num_hidden_layers"],
            num_attention_heads=shape["num_attention_heads"], intermediate_size=shape["intermediate_size"],
            attn_implementation=config.attn_implementation, hidden_dropout_prob=config.hidden_dropout_prob,
        ))
    else:
        model = BriskBertForMaskedLM(BriskBertConfig.from_preset(
            config.preset, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
            attn_implementation=config.attn_implementation, hidden_dropout_prob=config.hidden_dropout_prob,
            attention_gate=config.attention_gate,
        ))
    if config.init_from and config.tokenizer:
        own = AutoTokenizer.from_pretrained(data_path(config.init_from), trust_remote_code=True)
        new_vocab = tokenizer.get_vocab()
        extends_own = len(tokenizer) > len(own) and all(
            new_vocab.get(token) == index for token, index in own.get_vocab().items())
        if extends_own:  # e.g. briskbert-train-tokenizer --extend: new rows start from their old pieces' mean
            grown = grow_embeddings(model, own, tokenizer)
            echo(f"embeddings grown by {len(grown)} rows for the extended tokenizer {config.tokenizer}")
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        raise SystemExit(
            f"The tokenizer has {len(tokenizer)} tokens but the model only {model.get_input_embeddings().num_embeddings}"
            f" embeddings, and it does not extend the checkpoint's own tokenizer (old ids must keep their place): "
            f"pretrain with the checkpoint's tokenizer, extend that one (briskbert-train-tokenizer --extend), or set "
            f"extend_tokenizer_tokens."
        )
    return tokenizer, model


def head_parameter_names(model) -> set[str]:
    """The MLM head's own parameters (BriskBERT's `head` and decoder bias, BertForMaskedLM's `cls.predictions`):
    everything outside the base model. The decoder's weight is tied to the word embeddings, so it is the encoder's
    and is frozen with it."""
    prefix = model.base_model_prefix + "."
    return {name for name, _ in model.named_parameters() if not name.startswith(prefix)}
