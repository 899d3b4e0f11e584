"""Exact conversion of BERT and MosaicBERT checkpoints into BriskBERT folders (what briskbert-convert runs).

A conversion reads the source's raw tensors (not a transformers model, which would silently drop keys it
does not know), maps every key onto BriskBERT, and refuses a checkpoint with a key it does not map, a key
it needs but cannot find, or a configuration whose outputs BriskBERT cannot reproduce exactly.

transformers BERT (`model_type="bert"`, separate query/key/value) -> BriskBERT with
`position_embedding_type="absolute"` and `mlp_type="mlp"`:
- query, key, value are concatenated (rows) into `Wqkv`, in that order, as BriskBERT reads [3, heads, head_dim];
- learned positions count from 0 in every sequence, as BERT's do for right-padded rows (BERT also counts the
  padding of left-padded rows; BriskBERT never sees padding);
- the pooler (dense + tanh on [CLS]) becomes `classifier.dense` of the classification / multiple-choice heads
  (`classifier_pooling="cls"`), BERT's `classifier` their `classifier.out_proj`. A bare `BertModel`'s pooler is
  kept in the folder as `classifier.dense`, so a
  classification head later fine-tuned from the folder starts from it, as `BertForSequenceClassification` does
  from `bert-base`; `BriskBertModel` itself ignores it (its `pooler_output` is the mean-pooled sentence
  embedding). A sentence-transformers folder's pooler is dropped, and the conversion says so: the
  sentence-transformers pipeline (token embeddings -> Pooling) never reads it.

MosaicBERT (mosaicml/examples `benchmarks/bert/src/bert_layers.py`, `mosaicml/mosaic-bert-base`; its config also
says `model_type="bert"`, so the fused `Wqkv` key tells the two apart). Their choices, and whether BriskBERT's
layers match them:
- embeddings: word + token type, LayerNorm, dropout, no position embeddings -- matched;
- attention: one fused `Wqkv` whose output splits as (three, heads, head_dim) -- BriskBERT's layout, copied as is;
  scores scaled by 1/sqrt(head_dim), plus the ALiBi bias, softmax, dropout on probabilities -- matched;
- ALiBi: symmetric -slope * |i - j|, slopes 2^(-8/n)^(i+1) with the paper's interleaving for a head count that
  is not a power of 2 -- the same formula as `attention.alibi_slopes` (the parity test uses 12 heads);
- padding: they add -10000 to padded keys, BriskBERT never computes them; equal in fp32 (exp(-10000) is 0);
- blocks: post-LN, `LayerNorm(dense(attention) dropped-out + input)`, then the GLU block -- matched;
- GLU: `gated_layers` (no bias) gives [gate | value] in that order, GELU (exact, not tanh) on the gate, times the
  value, then `wo`, then `layernorm(out + residual)` -- matched, weights copied as is. Not matched: their dropout
  acts on the GLU activations before `wo`, BriskBERT's on the block output; identical outside training;
- MLM head: dense, `hidden_act`, LayerNorm with eps fixed at 1e-12, decoder tied to the word embeddings -- matched
  (BriskBERT's head uses `layer_norm_eps`, so a config with another eps is refused);
- sequence classification: pooler (dense + tanh on the first token), dropout, classifier -- matched (as
  `classifier.dense`, `classifier.out_proj`).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoTokenizer
from transformers.activations import ACT2FN

from ... import modeling
from ...modeling import HEADS, BriskBertConfig, BriskBertModel
from ..resources import read_sentences
from .sentence_embeddings import copy_sentence_transformers_modules, find_sentence_transformers_model

SOURCES = ("bert", "mosaicbert")

# the BERT architecture each BriskBERT class stands in for (same head, same outputs)
TARGET_CLASSES = {head.bert_name: getattr(modeling, head.name) for head in HEADS}
# what MosaicBERT's bert_layers.py implements (its other classes are `pass`)
MOSAICBERT_ARCHITECTURES = ("BertModel", "BertForMaskedLM", "BertForSequenceClassification")

# Logit of the vocabulary slots added to reach a multiple of 64: their embeddings are zero, and this bias keeps them
# out of every softmax (exp(-1e4) is 0 in fp32; the value also fits fp16 and bf16), so the real tokens' probabilities
# equal the source's.
UNUSED_TOKEN_LOGIT = -1e4

# config fields copied unchanged from a BERT / MosaicBERT config into BriskBertConfig
SHARED_CONFIG_FIELDS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "hidden_dropout_prob", "attention_probs_dropout_prob", "type_vocab_size", "layer_norm_eps",
    "initializer_range", "pad_token_id", "classifier_dropout", "id2label", "label2id", "problem_type",
)


class ConversionError(ValueError):
    """The checkpoint cannot be converted exactly; the message says why and what to do."""


@dataclass
class Conversion:
    model: torch.nn.Module
    notes: list[str] = field(default_factory=list)  # what the user should know (dropped pooler, padded vocabulary)
    pooler: dict[str, torch.Tensor] | None = None  # a bare encoder's BERT pooler, saved beside it


# ---------------------------------------------------------------------------------------------- reading a source


def resolve_source(source: str) -> Path:
    """A local folder as is; anything else is taken as a Hub id and downloaded (needs network)."""
    path = Path(source)
    if path.is_dir():
        return path
    if path.exists() or source.startswith((".", "/")):
        raise ConversionError(f"--source {source!r} is not a folder: pass a checkpoint folder or a Hub id.")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source))
    except Exception as error:  # offline, unknown repo, gated repo: all need the user's action
        raise ConversionError(
            f"--source {source!r} is not a local folder and could not be downloaded from the Hub ({error}). "
            f"Download it where there is network and pass the folder."
        ) from error


def read_checkpoint(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config.json as a dict, every tensor of the checkpoint) from a transformers folder."""
    config_path = folder / "config.json"
    if not config_path.exists():
        raise ConversionError(f"{folder} has no config.json: pass the folder that transformers' from_pretrained reads.")
    config = json.loads(config_path.read_text())
    tensors: dict[str, torch.Tensor] = {}
    for index_name, loader in (("model.safetensors.index.json", _load_safetensors), ("pytorch_model.bin.index.json", _load_bin)):
        if (folder / index_name).exists():
            shards = sorted(set(json.loads((folder / index_name).read_text())["weight_map"].values()))
            for shard in shards:
                tensors.update(loader(folder / shard))
            return config, tensors
    for name, loader in (("model.safetensors", _load_safetensors), ("pytorch_model.bin", _load_bin)):
        if (folder / name).exists():
            return config, loader(folder / name)
    raise ConversionError(
        f"{folder} holds no model.safetensors or pytorch_model.bin (nor a sharded index): it is not a PyTorch "
        f"transformers checkpoint."
    )


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path)


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------------- key bookkeeping


class Keys:
    """The source's tensors, handed out once each: a key never taken is an unknown key, a key asked for and
    absent is a missing one. Either refuses the conversion."""

    def __init__(self, tensors: dict[str, torch.Tensor], source: str):
        self.tensors, self.source, self.taken = tensors, source, set()

    def has(self, key: str) -> bool:
        return key in self.tensors

    def take(self, key: str) -> torch.Tensor:
        if key not in self.tensors:
            raise ConversionError(
                f"The {self.source} checkpoint lacks {key!r}, which the conversion needs: the checkpoint is "
                f"incomplete or of another layout. Check that it loads in its own code without missing-weight "
                f"warnings."
            )
        self.taken.add(key)
        return self.tensors[key].float()

    def ignore(self, key: str):
        """A key that holds no weight (a buffer such as BERT's `position_ids`)."""
        self.taken.add(key)

    def check_all_taken(self):
        unknown = sorted(set(self.tensors) - self.taken)
        if unknown:
            shown = ", ".join(unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
            raise ConversionError(
                f"The {self.source} checkpoint holds weights the conversion does not know: {shown}. Converting "
                f"would drop them and change the model's outputs; remove them from the checkpoint yourself if "
                f"they are unused (e.g. an NSP head: re-save the model as BertForMaskedLM)."
            )


def _strip_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if tensors and all(key.startswith(prefix) for key in tensors):
        return {key[len(prefix) :]: value for key, value in tensors.items()}
    return tensors


# ---------------------------------------------------------------------------------------------- configs


def _architecture(config: dict, allowed, source: str) -> str:
    model_type = config.get("model_type")
    if model_type != "bert":
        raise ConversionError(
            f"The source is a {model_type!r} model, not BERT: --from {source} converts only BERT-layout checkpoints "
            f"(model_type 'bert'). {model_type!r} has other layers (e.g. RoBERTa offsets its positions, ModernBERT "
            f"uses RoPE and pre-LN), which BriskBERT does not reproduce."
        )
    architectures = config.get("architectures") or []
    if len(architectures) != 1 or architectures[0] not in allowed:
        raise ConversionError(
            f"config.json names architectures {architectures}; --from {source} converts exactly one of "
            f"{list(allowed)}. Set 'architectures' to the class the checkpoint was saved from."
        )
    return architectures[0]


def _briskbert_config(source_config: dict, vocab_size: int, **fields) -> BriskBertConfig:
    shared = {key: source_config[key] for key in SHARED_CONFIG_FIELDS if source_config.get(key) is not None}
    if "id2label" in shared:
        shared["id2label"] = {int(k): v for k, v in shared["id2label"].items()}
    if shared.get("hidden_act") not in ACT2FN:
        raise ConversionError(f"hidden_act {shared.get('hidden_act')!r} is not an activation transformers knows.")
    if shared.get("pad_token_id") is not None and shared["pad_token_id"] >= vocab_size:
        shared["pad_token_id"] = None
    return BriskBertConfig(vocab_size=vocab_size, classifier_pooling="cls", **shared, **fields)


def _check_bert_config(config: dict):
    refusals = {
        "position_embedding_type": lambda v: v not in (None, "absolute"),
        "is_decoder": bool,
        "add_cross_attention": bool,
    }
    for key, refused in refusals.items():
        if refused(config.get(key)):
            raise ConversionError(
                f"config.json sets {key}={config[key]!r}; BriskBERT reproduces only BERT encoders with absolute "
                f"positions (position_embedding_type='absolute', no decoder or cross-attention)."
            )


# ---------------------------------------------------------------------------------------------- weights


def _padded_rows(weight: torch.Tensor, rows: int, fill: float = 0.0) -> torch.Tensor:
    if weight.shape[0] > rows:
        raise ConversionError(f"a vocabulary of {weight.shape[0]} rows does not fit {rows}")
    extra = weight.new_full((rows - weight.shape[0], *weight.shape[1:]), fill)
    return torch.cat([weight, extra])


def _fill_heads(keys: Keys, architecture: str, config: BriskBertConfig, encoder: str, state: dict, source_vocab: int):
    """The weights after the encoder, the same names in BERT and MosaicBERT."""
    if architecture == "BertForMaskedLM":
        state["head.dense.weight"] = keys.take("cls.predictions.transform.dense.weight")
        state["head.dense.bias"] = keys.take("cls.predictions.transform.dense.bias")
        state["head.norm.weight"] = keys.take("cls.predictions.transform.LayerNorm.weight")
        state["head.norm.bias"] = keys.take("cls.predictions.transform.LayerNorm.bias")
        # transformers keeps the decoder bias as `cls.predictions.bias` (tied to `decoder.bias`), MosaicBERT as
        # `decoder.bias`; older BERT checkpoints hold both, equal
        biases = [keys.take(k) for k in ("cls.predictions.bias", "cls.predictions.decoder.bias") if keys.has(k)]
        if not biases:
            keys.take("cls.predictions.bias")  # raises: missing
        if len(biases) == 2 and not torch.equal(*biases):
            raise ConversionError("cls.predictions.bias and cls.predictions.decoder.bias differ; BERT ties them.")
        state["decoder.bias"] = _padded_rows(biases[0], config.vocab_size, UNUSED_TOKEN_LOGIT)
        embeddings = state[f"{encoder}embeddings.word_embeddings.weight"]
        if keys.has("cls.predictions.decoder.weight"):
            decoder = keys.take("cls.predictions.decoder.weight")
            if not torch.equal(decoder, embeddings[:source_vocab]):
                config.tie_word_embeddings = False
                state["decoder.weight"] = _padded_rows(decoder, config.vocab_size)
        if config.tie_word_embeddings:
            state["decoder.weight"] = embeddings
    pooled_head = architecture in POOLED_HEAD_ARCHITECTURES
    if pooled_head:  # BERT's pooler and classifier make up BriskBERT's one `classifier` module
        for kind in ("weight", "bias"):
            state[f"classifier.dense.{kind}"] = keys.take(f"bert.pooler.dense.{kind}")
    for head in ("classifier", "qa_outputs"):
        if keys.has(f"{head}.weight") or architecture in _HEAD_OWNERS[head]:
            target = "classifier.out_proj" if head == "classifier" and pooled_head else head
            state[f"{target}.weight"] = keys.take(f"{head}.weight")
            state[f"{target}.bias"] = keys.take(f"{head}.bias")


# the heads that pool each sequence into BriskBertClassificationHead (BERT's pooler, dropout, classifier)
POOLED_HEAD_ARCHITECTURES = ("BertForSequenceClassification", "BertForMultipleChoice")
_HEAD_OWNERS = {
    "classifier": ("BertForSequenceClassification", "BertForTokenClassification", "BertForMultipleChoice"),
    "qa_outputs": ("BertForQuestionAnswering",),
}


def _fill_embeddings(keys: Keys, base: str, encoder: str, config: BriskBertConfig, state: dict, absolute: bool):
    word = keys.take(f"{base}embeddings.word_embeddings.weight")
    state[f"{encoder}embeddings.word_embeddings.weight"] = _padded_rows(word, config.vocab_size)
    state[f"{encoder}embeddings.token_type_embeddings.weight"] = keys.take(f"{base}embeddings.token_type_embeddings.weight")
    if absolute:
        state[f"{encoder}embeddings.position_embeddings.weight"] = keys.take(f"{base}embeddings.position_embeddings.weight")
    state[f"{encoder}embeddings.norm.weight"] = keys.take(f"{base}embeddings.LayerNorm.weight")
    state[f"{encoder}embeddings.norm.bias"] = keys.take(f"{base}embeddings.LayerNorm.bias")
    for buffer in ("position_ids", "token_type_ids"):  # buffers older transformers saved; no weights
        if keys.has(f"{base}embeddings.{buffer}"):
            keys.ignore(f"{base}embeddings.{buffer}")


def _build(model_class, config: BriskBertConfig, state: dict) -> torch.nn.Module:
    model = model_class(config).eval()
    expected = set(model.state_dict())
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:  # a bug in the mapping, never the user's checkpoint
        raise RuntimeError(f"conversion mapping is incomplete: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
    shapes = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} (expected {tuple(shapes[k].shape)})" for k, v in state.items() if v.shape != shapes[k].shape]
    if wrong:
        raise ConversionError(
            f"Weights disagree with the shapes config.json implies: {', '.join(wrong[:4])}. The config does not "
            f"describe this checkpoint (e.g. num_labels, intermediate_size); fix config.json."
        )
    model.load_state_dict(state, strict=True)
    return model


def convert_bert(config: dict, tensors: dict[str, torch.Tensor], sentence_transformers: bool = False) -> Conversion:
    """transformers BERT (any `TARGET_CLASSES` head) -> BriskBERT with absolute positions and BERT's MLP."""
    if any(".attention.self.Wqkv." in key for key in tensors):
        raise ConversionError(
            "This checkpoint has fused attention weights (attention.self.Wqkv): it is a MosaicBERT checkpoint. "
            "Convert it with --from mosaicbert."
        )
    architecture = _architecture(config, TARGET_CLASSES, "bert")
    _check_bert_config(config)
    keys = Keys(tensors, "BERT")
    base = "bert." if architecture != "BertModel" else ""
    if architecture == "BertModel" and not keys.has("embeddings.word_embeddings.weight"):
        base = "bert."  # a BertModel saved from inside a task model
    source_vocab = tensors.get(f"{base}embeddings.word_embeddings.weight", torch.empty(config.get("vocab_size", 0))).shape[0]
    briskbert_config = _briskbert_config(
        config, source_vocab, position_embedding_type="absolute", mlp_type="mlp",
        max_position_embeddings=config.get("max_position_embeddings", 512),
    )
    model_class = TARGET_CLASSES[architecture]
    encoder = "" if model_class is BriskBertModel else "model."
    state, notes = {}, []
    _fill_embeddings(keys, base, encoder, briskbert_config, state, absolute=True)
    for i in range(briskbert_config.num_hidden_layers):
        source, target = f"{base}encoder.layer.{i}.", f"{encoder}layers.{i}."
        for kind in ("weight", "bias"):
            state[f"{target}attention.Wqkv.{kind}"] = torch.cat(
                [keys.take(f"{source}attention.self.{part}.{kind}") for part in ("query", "key", "value")]
            )
            state[f"{target}attention.Wo.{kind}"] = keys.take(f"{source}attention.output.dense.{kind}")
            state[f"{target}attention.norm.{kind}"] = keys.take(f"{source}attention.output.LayerNorm.{kind}")
            state[f"{target}mlp.Wi.{kind}"] = keys.take(f"{source}intermediate.dense.{kind}")
            state[f"{target}mlp.Wo.{kind}"] = keys.take(f"{source}output.dense.{kind}")
            state[f"{target}mlp.norm.{kind}"] = keys.take(f"{source}output.LayerNorm.{kind}")
    _fill_heads(keys, architecture, briskbert_config, encoder, state, source_vocab)

    pooler = None
    if architecture == "BertModel" and keys.has(f"{base}pooler.dense.weight"):
        pooler = {kind: keys.take(f"{base}pooler.dense.{kind}") for kind in ("weight", "bias")}
        if sentence_transformers:
            notes.append(
                "dropped BertModel's pooler (dense + tanh on [CLS]): the sentence-transformers pipeline this model "
                "was published with never reads it (its embeddings come from the Pooling module)"
            )
            pooler = None
        else:
            notes.append(
                "kept BertModel's pooler as `classifier.dense` for classification heads fine-tuned from this folder; "
                "BriskBertModel's pooler_output is the mean-pooled sentence embedding instead"
            )
    keys.check_all_taken()
    model = _build(model_class, briskbert_config, state)
    return Conversion(model, notes + _vocabulary_note(source_vocab, briskbert_config), pooler)


def convert_mosaicbert(config: dict, tensors: dict[str, torch.Tensor]) -> Conversion:
    """MosaicBERT (bert_layers.py: BertModel, BertForMaskedLM, BertForSequenceClassification) -> BriskBERT."""
    tensors = _strip_prefix(tensors, "model.")  # Composer's HuggingFaceModel wrapper prefixes every key
    if any(".attention.self.query." in key for key in tensors):
        raise ConversionError(
            "This checkpoint has separate query/key/value weights: it is a transformers BERT checkpoint, not "
            "MosaicBERT. Convert it with --from bert."
        )
    architecture = _architecture(config, MOSAICBERT_ARCHITECTURES, "mosaicbert")
    if config.get("hidden_act", "gelu") != "gelu":
        raise ConversionError(
            f"hidden_act is {config['hidden_act']!r}: MosaicBERT's GLU always uses exact GELU while its MLM head "
            f"uses hidden_act, and BriskBERT uses one activation for both; only 'gelu' converts exactly."
        )
    if architecture == "BertForMaskedLM" and config.get("layer_norm_eps", 1e-12) != 1e-12:
        raise ConversionError(
            f"layer_norm_eps is {config['layer_norm_eps']}: MosaicBERT's MLM head LayerNorm always uses 1e-12 and "
            f"BriskBERT's uses layer_norm_eps, so this head cannot convert exactly."
        )
    keys = Keys(tensors, "MosaicBERT")
    base = "bert." if architecture != "BertModel" or keys.has("bert.embeddings.word_embeddings.weight") else ""
    source_vocab = keys.tensors.get(f"{base}embeddings.word_embeddings.weight", torch.empty(0)).shape[0]
    briskbert_config = _briskbert_config(config, source_vocab, position_embedding_type="alibi", mlp_type="glu")
    model_class = TARGET_CLASSES[architecture]
    encoder = "" if model_class is BriskBertModel else "model."
    state, notes = {}, []
    _fill_embeddings(keys, base, encoder, briskbert_config, state, absolute=False)
    renames = {
        "attention.self.Wqkv": "attention.Wqkv",
        "attention.output.dense": "attention.Wo",
        "attention.output.LayerNorm": "attention.norm",
        "mlp.wo": "mlp.Wo",
        "mlp.layernorm": "mlp.norm",
    }
    for i in range(briskbert_config.num_hidden_layers):
        source, target = f"{base}encoder.layer.{i}.", f"{encoder}layers.{i}."
        for theirs, ours in renames.items():
            for kind in ("weight", "bias"):
                state[f"{target}{ours}.{kind}"] = keys.take(f"{source}{theirs}.{kind}")
        state[f"{target}mlp.Wi.weight"] = keys.take(f"{source}mlp.gated_layers.weight")  # [gate | value], no bias
    _fill_heads(keys, architecture, briskbert_config, encoder, state, source_vocab)
    pooler = None
    if architecture == "BertModel" and keys.has(f"{base}pooler.dense.weight"):
        pooler = {kind: keys.take(f"{base}pooler.dense.{kind}") for kind in ("weight", "bias")}
        notes.append("kept BertModel's pooler as `classifier.dense` for classification heads fine-tuned from this folder")
    keys.check_all_taken()
    model = _build(model_class, briskbert_config, state)
    return Conversion(model, notes + _vocabulary_note(source_vocab, briskbert_config), pooler)


def _vocabulary_note(source_vocab: int, config: BriskBertConfig) -> list[str]:
    if config.vocab_size == source_vocab:
        return []
    return [f"vocabulary {source_vocab} -> {config.vocab_size} rows (a multiple of 64); the added rows are never predicted"]


# ---------------------------------------------------------------------------------------------- the whole folder


def convert(source_kind: str, source: str, output: Path, tokenizer: str | None = None) -> Conversion:
    """Convert `source` (folder or Hub id) into a BriskBERT folder at `output`: weights, code, tokenizer,
    and the sentence-transformers modules when the source is a sentence-transformers model."""
    if source_kind not in SOURCES:
        raise ConversionError(f"--from must be one of {SOURCES}, got {source_kind!r}.")
    folder = resolve_source(source)
    model_folder, st_modules = find_sentence_transformers_model(folder)
    config, tensors = read_checkpoint(model_folder)
    if source_kind == "bert":
        conversion = convert_bert(config, tensors, sentence_transformers=st_modules is not None)
    else:
        conversion = convert_mosaicbert(config, tensors)
    tokenizer_source = tokenizer or model_folder
    no_tokenizer = (
        "MosaicBERT checkpoints ship without one (they use bert-base-uncased's): pass --tokenizer <folder or Hub id>."
    )
    try:
        loaded_tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    except Exception as error:
        raise ConversionError(f"Could not load a tokenizer from {tokenizer_source} ({error}). {no_tokenizer}") from error
    # transformers builds an empty tokenizer (special tokens only) from a folder with a config and no vocabulary
    if len(loaded_tokenizer) <= len(loaded_tokenizer.all_special_tokens):
        raise ConversionError(f"{tokenizer_source} holds no tokenizer vocabulary. {no_tokenizer}")
    if len(loaded_tokenizer) > conversion.model.config.vocab_size:
        raise ConversionError(
            f"The tokenizer has {len(loaded_tokenizer)} tokens but the checkpoint's embeddings only "
            f"{conversion.model.config.vocab_size}: pass the tokenizer the model was trained with (--tokenizer)."
        )
    save_converted(conversion, output)
    loaded_tokenizer.save_pretrained(output)
    if st_modules is not None:
        copy_sentence_transformers_modules(folder, st_modules, output)
    return conversion


def save_converted(conversion: Conversion, output: Path):
    """`save_pretrained` (weights, code, auto_map); a bare encoder's BERT pooler goes beside it (see module doc)."""
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise ConversionError(f"{output} exists and is not empty: choose a new --output folder.")
    state_dict = None
    if conversion.pooler is not None:
        # BriskBertForSequenceClassification's layout: the encoder under `model.`, BERT's pooler as
        # `classifier.dense`; AutoModel strips the prefix and reports the pooler as unused, the classification heads
        # load it (and initialise only `classifier.out_proj`)
        state_dict = {f"model.{key}": value for key, value in conversion.model.state_dict().items()}
        state_dict.update({f"classifier.dense.{kind}": value for kind, value in conversion.pooler.items()})
    conversion.model.save_pretrained(output, state_dict=state_dict)


def check_against_source(source: Path, output: Path, count: int = 32) -> float:
    """Max abs difference of the last hidden states of the transformers BERT in `source` (the folder `convert` read)
    and the converted model in `output` (fp32), on `count` real SST-2 sentences."""
    from transformers import AutoModel

    model_folder, _ = find_sentence_transformers_model(source)
    tokenizer = AutoTokenizer.from_pretrained(output)
    batch = tokenizer(read_sentences(count), padding=True, truncation=True, max_length=128, return_tensors="pt")
    original = AutoModel.from_pretrained(model_folder, attn_implementation="eager").eval()
    converted = AutoModel.from_pretrained(output, trust_remote_code=True).eval()
    with torch.no_grad():
        expected = original(**batch).last_hidden_state
        actual = converted(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    return (expected[real] - actual[real]).abs().max().item()


__all__ = ["ConversionError", "convert", "convert_bert", "convert_mosaicbert", "read_checkpoint", "SOURCES", "check_against_source"]
