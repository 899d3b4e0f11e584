"""BriskBERT: a BERT-style encoder built for fast pretraining (the MosaicBERT recipe, Portes et al. 2023).

What it is made of, and why:
- No position embeddings: symmetric ALiBi biases attention by -slope * |i - j| (Press et al. 2022),
  so a model trained on 128 tokens runs on any length.
- GeGLU feed-forward: gate and value come from one fused Linear; GELU(gate) * value (Shazeer 2020).
- Post-LayerNorm blocks as BERT and MosaicBERT; LayerNorm runs in bf16 under bf16 autocast
  instead of being upcast to fp32 (MosaicBERT's low-precision LayerNorm).
- Unpadded: padding is removed once, before the embeddings; every Linear, norm and MLP runs on
  [total_real_tokens, hidden], and attention sees sequence boundaries (cu_seqlens), never padding.
  Packed rows (several documents per row) work the same way, with no attention across documents. Under
  `torch.export` the same layers run on the padded rows instead (`unpadding.PaddedBatch`), so the model exports.
- Outputs are the caller's shapes: hidden states [batch, seq, hidden] (on the graph), attentions
  [batch, heads, seq, seq] (computed on the eager backend for a call that asks for them).
- Attention backends (eager, sdpa, flex_attention, flash_attention_2) live in `attention.py` and are
  picked by transformers' `attn_implementation`.
- Vocabulary rounded up to a multiple of 64; MLM decoder tied to the embeddings and, in training,
  run only on masked positions.
- CPU-inference tunings (in-place residual add and gating, the split GLU projection) live in
  `cpu_inference.py`; each computes what its plain expression computes.
- Two config switches exist only so BERT checkpoints convert exactly (briskbert-convert):
  `position_embedding_type="absolute"` (learned positions, no ALiBi) and `mlp_type="mlp"` (BERT's
  feed-forward). They run on the same unpadded path and attention backends.

Reading order: layers (norm, embeddings, attention, feed-forward, block), the encoder, then the task heads.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.loss.loss_utils import fixed_cross_entropy
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.utils import logging

from .attention import build_attention
from .configuration_briskbert import BriskBertConfig
from .cpu_inference import gate, gate_and_value, residual_add
from .heads import HEADS
from .unpadding import PaddedBatch, UnpaddedBatch, padded_batch, unpad_batch

logger = logging.get_logger(__name__)


# ---- layers: norm, embeddings, attention, feed-forward, block


class LowPrecisionLayerNorm(nn.LayerNorm):
    """LayerNorm that stays in the autocast dtype; autocast would otherwise upcast it to fp32 (MosaicBERT)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        if not torch.is_autocast_enabled(device):
            return super().forward(x)
        dtype = torch.get_autocast_dtype(device)
        with torch.autocast(device_type=device, enabled=False):
            return F.layer_norm(x.to(dtype), self.normalized_shape, self.weight.to(dtype), self.bias.to(dtype), self.eps)


class BriskBertEmbeddings(nn.Module):
    def __init__(self, config: BriskBertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.position_embeddings = None  # ALiBi: positions enter as attention biases
        if config.position_embedding_type == "absolute":
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.norm = LowPrecisionLayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids=None, token_type_ids=None, inputs_embeds=None, positions=None) -> torch.Tensor:
        # all [total] -> [total, hidden]; `positions` (each token's place in its own sequence) only when absolute
        embeddings = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        if token_type_ids is None:
            embeddings = embeddings + self.token_type_embeddings.weight[0]
        else:
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        if self.position_embeddings is not None:
            embeddings = embeddings + self.position_embeddings(positions)  # BERT's order of additions
        return self.dropout(self.norm(embeddings))


class BriskBertAttention(nn.Module):
    def __init__(self, config: BriskBertConfig):
        super().__init__()
        self.num_heads, self.head_dim = config.num_attention_heads, config.head_dim
        self.scale = self.head_dim**-0.5
        self.probs_dropout = config.attention_probs_dropout_prob
        self.Wqkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.Wo = nn.Linear(config.hidden_size, config.hidden_size)
        self.gate = nn.Linear(config.hidden_size, self.num_heads) if config.attention_gate else None
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.norm = LowPrecisionLayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden, attention, output_attentions=False):
        total, hidden_size = hidden.shape
        qkv = self.Wqkv(hidden).view(total, 3, self.num_heads, self.head_dim)
        dropout_p = self.probs_dropout if self.training else 0.0
        context, probs = attention(qkv, self.scale, dropout_p, output_attentions)  # [total, heads, head_dim]
        if self.gate is not None:  # after the kernel, so every attention backend gets it unchanged
            context = context * torch.sigmoid(self.gate(hidden)).unsqueeze(-1)
        hidden = self.norm(residual_add(hidden, self.dropout(self.Wo(context.reshape(total, hidden_size)))))
        return hidden, probs


class BriskBertGatedMLP(nn.Module):
    """GeGLU: Wi gives [gate | value] (MosaicBERT's `gated_layers` order, so its weights convert as they are).

    Dropout sits on the block's output as in BERT, not on the 4x wider GLU activations as in MosaicBERT:
    the same regularisation at a quarter of the mask cost (sampling the wide mask took ~4% of a CPU step).
    """

    def __init__(self, config: BriskBertConfig):
        super().__init__()
        self.Wi = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.act = ACT2FN[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.Wo = nn.Linear(config.intermediate_size, config.hidden_size)
        self.norm = LowPrecisionLayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden):
        gate_input, value = gate_and_value(self.Wi, hidden)  # each [total, intermediate]
        gated = gate(self.act(gate_input), value)
        return self.norm(residual_add(hidden, self.dropout(self.Wo(gated))))


class BriskBertMLP(nn.Module):
    """BERT's feed-forward (`mlp_type="mlp"`): dense + activation, dense, dropout, residual LayerNorm."""

    def __init__(self, config: BriskBertConfig):
        super().__init__()
        self.Wi = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.Wo = nn.Linear(config.intermediate_size, config.hidden_size)
        self.norm = LowPrecisionLayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden):
        return self.norm(residual_add(hidden, self.dropout(self.Wo(self.act(self.Wi(hidden))))))


class BriskBertLayer(GradientCheckpointingLayer):
    def __init__(self, config: BriskBertConfig):
        super().__init__()
        self.attention = BriskBertAttention(config)
        self.mlp = BriskBertGatedMLP(config) if config.mlp_type == "glu" else BriskBertMLP(config)

    def forward(self, hidden, attention, output_attentions=False):
        hidden, probs = self.attention(hidden, attention, output_attentions)
        return self.mlp(hidden), probs


# ---- the encoder: unpad once, run every layer on the real tokens


@dataclass
class EncodedTokens:
    """The encoder's output before re-padding: what the task heads work on."""

    hidden: torch.Tensor  # [total, hidden]
    batch: UnpaddedBatch | PaddedBatch
    hidden_states: tuple[torch.Tensor, ...] | None  # [batch, seq, hidden] per layer, embeddings first
    attentions: tuple[torch.Tensor, ...] | None  # [batch, heads, seq, seq] per layer

    def pool(self, how: str) -> torch.Tensor:
        """[sequences, hidden] by `config.classifier_pooling`: "cls" (first token) or "mean" (of the real tokens)."""
        return self.batch.first_tokens(self.hidden) if how == "cls" else self.batch.mean_pool(self.hidden)

    def padded_extras(self) -> dict:
        """hidden_states and attentions, for an output class."""
        return {"hidden_states": self.hidden_states, "attentions": self.attentions}


# what `BriskBertModel.encode` reads; every head's `forward` hands these on through `encoder_inputs`
ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "sequence_ids", "cu_seqlens", "inputs_embeds",
                  "output_attentions", "output_hidden_states")


def encoder_inputs(arguments: dict) -> dict:
    """The encoder's inputs among a `forward`'s arguments (its `locals()`), named parameters and `**kwargs` alike.

    The heads keep transformers' explicit signatures (its common tests and IDEs read them) but pass their inputs on
    in this one place: a new encoder input is added to `encode` and `ENCODER_INPUTS`, and reaches every head
    through its `**kwargs` until the head names it.
    """
    extra = arguments.get("kwargs") or {}
    return {name: arguments[name] if name in arguments else extra[name]
            for name in ENCODER_INPUTS if name in arguments or name in extra}


class BriskBertPreTrainedModel(PreTrainedModel):
    config_class = BriskBertConfig
    config: BriskBertConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["BriskBertEmbeddings", "BriskBertLayer"]
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_flash_attn = True
    default_lora_target_modules = ("Wqkv", "Wo", "Wi")  # peft LoRA targets: attention Wqkv/Wo, GLU/MLP Wi/Wo

    def __init__(self, config, *inputs, **kwargs):
        if getattr(config, "model_type", None) != BriskBertConfig.model_type:
            raise TypeError(
                f"{type(self).__name__} needs a BriskBertConfig, got {type(config).__name__} "
                f"(model_type={getattr(config, 'model_type', None)!r}): build one with BriskBertConfig(...) or "
                f"BriskBertConfig.from_preset(...)."
            )
        if config.hidden_size % config.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({config.hidden_size}) must be divisible by num_attention_heads "
                f"({config.num_attention_heads}): choose a head count that divides it (BERT uses heads of 64)."
            )
        super().__init__(config, *inputs, **kwargs)

    @classmethod
    def from_pretrained(cls, *args, output_loading_info=False, **kwargs):
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        if getattr(model.config, "briskbert_int8", None):
            # int8 weights under fp32 names: transformers would start every encoder Linear from random weights
            raise ValueError(
                "This folder holds an int8 BriskBERT (written by briskbert.save_quantized); load it with "
                "briskbert.load_quantized(path) (pip install briskbert), or quantize the fp32 model again."
            )
        # BriskBERT 0.1.0 kept the pooler beside the classifier (pooler.dense.*, classifier.*); transformers would
        # only warn and start that head from random weights, losing a fine-tuned one
        legacy = sorted(key for key in info["unexpected_keys"] if key.startswith("pooler.dense."))
        pooled_head = isinstance(getattr(model, "classifier", None), BriskBertClassificationHead)
        if legacy and pooled_head and kwargs.get("key_mapping") is None:
            raise ValueError(
                f"This checkpoint holds {legacy}: the head layout BriskBERT 0.1.0 saved. Rename its keys "
                f"pooler.dense.* -> classifier.dense.* and classifier.weight/bias -> classifier.out_proj.weight/bias "
                f"(safetensors.torch load_file / save_file) and load it again."
            )
        return (model, info) if output_loading_info else model

    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        # transformers guesses from the source whether a model reads its backend per call; ours does, at every
        # forward, from config._attn_implementation, so `set_attn_implementation` may switch it.
        return True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        # BERT's and MosaicBERT's scheme. transformers calls this on every module that owns parameters (for
        # code outside transformers it skips modules without their own, so dispatch on the leaves).
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            init.normal_(module.weight, mean=0.0, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding) and module.padding_idx is not None:
            if not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class BriskBertModel(BriskBertPreTrainedModel):
    """The encoder. `pooler_output` is the mean of each sequence's real tokens (a sentence embedding)."""

    def __init__(self, config: BriskBertConfig, add_sentence_embedding: bool = True):
        super().__init__(config)
        self.add_sentence_embedding = add_sentence_embedding
        self.embeddings = BriskBertEmbeddings(config)
        self.layers = nn.ModuleList(BriskBertLayer(config) for _ in range(config.num_hidden_layers))
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    def encode(
        self,
        *,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        sequence_ids=None,
        cu_seqlens=None,
        inputs_embeds=None,
        output_attentions=None,
        output_hidden_states=None,
    ) -> EncodedTokens:
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        implementation = self.config._attn_implementation or "sdpa"
        if output_attentions and implementation != "eager":
            logger.warning_once(
                f"BriskBERT's {implementation!r} attention does not return attention probabilities, so calls with "
                f"output_attentions=True run on the eager backend. Load the model with attn_implementation='eager' "
                f"to make that the default."
            )
            implementation = "eager"
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids and inputs_embeds.")
        ids_shape = tuple(input_ids.shape) if input_ids is not None else tuple(inputs_embeds.shape[:-1])
        device = (input_ids if input_ids is not None else inputs_embeds).device
        if input_ids is not None:
            self._check_token_ids(input_ids)
        # finding the real tokens needs data-dependent shapes, which an exported graph cannot hold
        find_batch = padded_batch if torch.compiler.is_exporting() else unpad_batch
        batch = find_batch(ids_shape, device, attention_mask, sequence_ids, cu_seqlens)
        alibi = self.config.position_embedding_type == "alibi"
        if not alibi and batch.max_seqlen > self.config.max_position_embeddings:
            raise ValueError(
                f"A sequence holds {batch.max_seqlen} tokens but this model has learned positions for only "
                f"{self.config.max_position_embeddings} (max_position_embeddings): truncate the input "
                f"(tokenizer(..., truncation=True, max_length={self.config.max_position_embeddings}))."
            )

        hidden = self.embeddings(
            input_ids=None if input_ids is None else batch.unpad(input_ids),
            token_type_ids=None if token_type_ids is None else batch.unpad(token_type_ids),
            inputs_embeds=None if inputs_embeds is None else batch.unpad(inputs_embeds),
            positions=None if alibi else batch.positions_in_sequence(),
        )  # [total, hidden]
        attention = build_attention(implementation, batch, self.config.num_attention_heads, device, alibi)
        hidden_states, attentions = [], []

        def keep_padded(hidden):
            # the caller's [batch, seq] copy is what the next layer reads (unpadded again), so it stays on the graph
            # and its gradient can be kept (saliency, integrated gradients); only when hidden states are asked for
            padded = batch.pad(hidden)
            hidden_states.append(padded)
            return batch.unpad(padded)

        if output_hidden_states:
            hidden = keep_padded(hidden)
        for layer in self.layers:
            hidden, probs = layer(hidden, attention, output_attentions)
            if output_hidden_states:
                hidden = keep_padded(hidden)
            if output_attentions:
                attentions.append(probs)
        return EncodedTokens(
            hidden,
            batch,
            tuple(hidden_states) if output_hidden_states else None,
            tuple(attentions) if output_attentions else None,
        )

    def _check_token_ids(self, input_ids):
        if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
            raise ValueError(
                f"input_ids must hold integer token ids, got dtype {input_ids.dtype}: pass the ids the tokenizer "
                f"returned (torch.long), e.g. tokenizer(texts, return_tensors='pt'); to feed vectors instead of ids, "
                f"pass them as inputs_embeds."
            )
        # an out-of-range id is a CUDA device-side assert far from its cause; say what is wrong instead
        if torch.compiler.is_compiling() or torch.compiler.is_exporting() or input_ids.numel() == 0:
            return
        low, high = int(input_ids.min()), int(input_ids.max())
        if low < 0 or high >= self.config.vocab_size:
            raise ValueError(
                f"input_ids hold token id {low if low < 0 else high}, outside this model's vocabulary "
                f"(0..{self.config.vocab_size - 1}): the tokenizer does not match the model; resize the "
                f"embeddings with model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)."
            )

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        sequence_ids=None,
        cu_seqlens=None,
        inputs_embeds=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        encoded = self.encode(**encoder_inputs(locals()))
        output = BaseModelOutputWithPooling(
            last_hidden_state=encoded.batch.pad(encoded.hidden),
            pooler_output=encoded.batch.mean_pool(encoded.hidden) if self.add_sentence_embedding else None,
            **encoded.padded_extras(),
        )
        return output if _return_dict(self.config, return_dict) else output.to_tuple()


def _return_dict(config, return_dict) -> bool:
    return config.return_dict if return_dict is None else return_dict


# ---- task heads, alike so they are easy to audit (modeling/heads.py lists them)


def _classifier_dropout(config: BriskBertConfig) -> nn.Dropout:
    p = config.hidden_dropout_prob if config.classifier_dropout is None else config.classifier_dropout
    return nn.Dropout(p)


class BriskBertClassificationHead(nn.Module):
    """One prediction per sequence from its pooled token: BERT's pooler (dense + tanh), dropout, then the output
    projection, in BERT's order so its checkpoints convert exactly.

    One module named `classifier` (RoBERTa's layout) because that is the name PEFT's sequence-classification
    defaults save beside an adapter (`modules_to_save=["classifier", "score"]`): the pooler, newly initialised on
    an MLM checkpoint, is saved with the output projection instead of being lost.
    """

    def __init__(self, config: BriskBertConfig, num_outputs: int):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = _classifier_dropout(config)
        self.out_proj = nn.Linear(config.hidden_size, num_outputs)

    def forward(self, pooled):
        return self.out_proj(self.dropout(torch.tanh(self.dense(pooled))))


class BriskBertPredictionHead(nn.Module):
    """BERT's MLM transform: dense, activation, LayerNorm."""

    def __init__(self, config: BriskBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.norm = LowPrecisionLayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden):
        return self.norm(self.act(self.dense(hidden)))


class BriskBertForMaskedLM(BriskBertPreTrainedModel):
    _tied_weights_keys = {"decoder.weight": "model.embeddings.word_embeddings.weight"}

    def __init__(self, config: BriskBertConfig):
        super().__init__(config)
        self.model = BriskBertModel(config, add_sentence_embedding=False)
        self.head = BriskBertPredictionHead(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def get_output_embeddings(self):
        return self.decoder

    def set_output_embeddings(self, new_embeddings):
        self.decoder = new_embeddings

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        sequence_ids=None,
        cu_seqlens=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        """`labels`: token ids at masked positions, -100 elsewhere. In training with `sparse_prediction`,
        the decoder runs only on masked positions and `logits` is [masked, vocab]; else [batch, seq, vocab].
        `num_items_in_batch` (kwarg, as the transformers Trainer passes it) normalises the loss by the masked
        tokens of a whole accumulated batch instead of this micro-batch's."""
        encoded = self.model.encode(**encoder_inputs(locals()))
        hidden = encoded.hidden
        sparse = labels is not None and self.training and self.config.sparse_prediction
        if labels is not None:
            labels = encoded.batch.unpad(labels)
        if sparse:
            # masked tokens in input (row-major) order, so logits rows line up with labels[labels != -100]
            masked = (labels != -100).nonzero().flatten()
            masked = masked[encoded.batch.input_positions()[masked].argsort()]
            hidden, labels = hidden[masked], labels[masked]
        logits = self.decoder(self.head(hidden))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        output = MaskedLMOutput(
            loss=loss, logits=logits if sparse else encoded.batch.pad(logits), **encoded.padded_extras()
        )
        return output if _return_dict(self.config, return_dict) else output.to_tuple()


class BriskBertForSequenceClassification(BriskBertPreTrainedModel):
    def __init__(self, config: BriskBertConfig):
        super().__init__(config)
        self.model = BriskBertModel(config, add_sentence_embedding=False)
        self.classifier = BriskBertClassificationHead(config, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        sequence_ids=None,
        cu_seqlens=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        """One prediction per sequence (per document when rows are packed). `config.problem_type` picks the
        loss: regression (MSE), single_label_classification (CE) or multi_label_classification (BCE)."""
        encoded = self.model.encode(**encoder_inputs(locals()))
        logits = self.classifier(encoded.pool(self.config.classifier_pooling))
        loss = None if labels is None else self.loss_function(labels, logits, self.config, **kwargs)
        output = SequenceClassifierOutput(loss=loss, logits=logits, **encoded.padded_extras())
        return output if _return_dict(self.config, return_dict) else output.to_tuple()


class BriskBertForTokenClassification(BriskBertPreTrainedModel):
    def __init__(self, config: BriskBertConfig):
        super().__init__(config)
        self.model = BriskBertModel(config, add_sentence_embedding=False)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        sequence_ids=None,
        cu_seqlens=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        """`labels`: [batch, seq] class ids, -100 where no loss is wanted. Loss and logits are computed on
        real tokens only; `logits` comes back as [batch, seq, num_labels] with zeros at padding."""
        encoded = self.model.encode(**encoder_inputs(locals()))
        logits = self.classifier(self.dropout(encoded.hidden))  # [total, num_labels]
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, encoded.batch.unpad(labels), self.config, **kwargs)
        output = TokenClassifierOutput(loss=loss, logits=encoded.batch.pad(logits), **encoded.padded_extras())
        return output if _return_dict(self.config, return_dict) else output.to_tuple()


class BriskBertForQuestionAnswering(BriskBertPreTrainedModel):
    def __init__(self, config: BriskBertConfig):
        super().__init__(config)
        self.model = BriskBertModel(config, add_sentence_embedding=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        sequence_ids=None,
        cu_seqlens=None,
        inputs_embeds=None,
        start_positions=None,
        end_positions=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        """Span start/end logits [batch, seq]; padding gets the dtype's lowest value so it is never chosen."""
        encoded = self.model.encode(**encoder_inputs(locals()))
        logits = self.qa_outputs(encoded.hidden)  # [total, 2]
        logits = encoded.batch.pad(logits, fill_value=torch.finfo(logits.dtype).min)
        start_logits, end_logits = logits.unbind(dim=-1)
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = self.loss_function(start_logits, end_logits, start_positions, end_positions, **kwargs)
        output = QuestionAnsweringModelOutput(
            loss=loss, start_logits=start_logits, end_logits=end_logits, **encoded.padded_extras()
        )
        return output if _return_dict(self.config, return_dict) else output.to_tuple()


class BriskBertForMultipleChoice(BriskBertPreTrainedModel):
    def __init__(self, config: BriskBertConfig):
        super().__init__(config)
        self.model = BriskBertModel(config, add_sentence_embedding=False)
        self.classifier = BriskBertClassificationHead(config, 1)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        """Inputs are [batch, choices, seq]; `labels` [batch] is the index of the right choice."""
        source = input_ids if input_ids is not None else inputs_embeds
        if source is None or source.dim() < 3:
            raise ValueError("BriskBertForMultipleChoice expects input_ids of shape [batch, choices, seq].")
        num_choices = source.shape[1]

        def flat(x):  # [batch, choices, seq, ...] -> [batch * choices, seq, ...]
            return None if x is None else x.reshape(-1, *x.shape[2:])

        inputs = encoder_inputs(locals())
        encoded = self.model.encode(**{name: flat(value) if torch.is_tensor(value) else value
                                       for name, value in inputs.items()})
        logits = self.classifier(encoded.pool(self.config.classifier_pooling)).view(-1, num_choices)
        loss = None if labels is None else fixed_cross_entropy(logits.float(), labels, **kwargs)
        output = MultipleChoiceModelOutput(loss=loss, logits=logits, **encoded.padded_extras())
        return output if _return_dict(self.config, return_dict) else output.to_tuple()


__all__ = ["BriskBertPreTrainedModel", *(head.name for head in HEADS)]
