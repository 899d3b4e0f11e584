"""MosaicBERT, re-expressed compactly from its published layers, as the reference the converter is tested against.

Source: mosaicml/examples, `examples/benchmarks/bert/src/bert_layers.py` and `bert_padding.py`. The module and
parameter names are theirs, so `state_dict()` is their checkpoint layout (`bert.encoder.layer.N.attention.self.Wqkv`,
`mlp.gated_layers`, `mlp.wo`, `mlp.layernorm`, `cls.predictions.*`), and so is every operation's order: embeddings
without positions; unpadded layers; attention through their PyTorch path (pad qkv, `(t h d)` split, scores / sqrt(d)
+ [ALiBi + (1 - mask) * -10000], softmax, dropout, unpad); post-LN blocks; GLU [gate | value] with exact GELU and
dropout before `wo`; MLM head LayerNorm eps fixed at 1e-12. Their ALiBi slopes are copied from their
`_get_alibi_head_slopes` (not from BriskBERT's), so the parity test also checks the slopes. Written independently of
BriskBERT: it imports nothing from it.
"""

import math
from types import SimpleNamespace

import torch
from torch import nn
from transformers.activations import ACT2FN


def mosaicbert_config(**overrides) -> SimpleNamespace:
    """Their BertConfig's fields (as in mosaicml/mosaic-bert-base's config.json), small."""
    fields = dict(
        vocab_size=30528, hidden_size=96, num_hidden_layers=2, num_attention_heads=12, intermediate_size=128,
        hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.0, type_vocab_size=2,
        layer_norm_eps=1e-12, initializer_range=0.02, pad_token_id=0, max_position_embeddings=512,
        alibi_starting_size=512, num_labels=3, classifier_dropout=None,
    )
    fields.update(overrides)
    return SimpleNamespace(**fields)


def config_json(config: SimpleNamespace, architecture: str) -> dict:
    """config.json as their Hub checkpoints write it: model_type 'bert' (their layers come by auto_map)."""
    return dict(
        vars(config), model_type="bert", architectures=[architecture], position_embedding_type="absolute",
        auto_map={"AutoConfig": "configuration_bert.BertConfig", "AutoModelForMaskedLM": "bert_layers.BertForMaskedLM"},
        id2label={str(i): f"LABEL_{i}" for i in range(config.num_labels)},
        label2id={f"LABEL_{i}": i for i in range(config.num_labels)},
    )


def alibi_head_slopes(n_heads: int) -> list[float]:
    def get_slopes_power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return get_slopes_power_of_2(n_heads)
    closest = 2 ** math.floor(math.log2(n_heads))
    return get_slopes_power_of_2(closest) + alibi_head_slopes(2 * closest)[0::2][: n_heads - closest]


class BertEmbeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids):
        return self.dropout(self.LayerNorm(self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)))


class BertUnpadSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.Wqkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)

    def forward(self, hidden_states, attn_mask, bias):
        batch, seqlen = attn_mask.shape
        qkv = self.Wqkv(hidden_states)  # [nnz, 3 * hidden]
        padded = qkv.new_zeros(batch * seqlen, qkv.shape[-1])
        padded[attn_mask.flatten()] = qkv  # bert_padding.pad_input
        qkv = padded.view(batch, seqlen, 3, self.num_attention_heads, self.attention_head_size)  # b s t h d
        q = qkv[:, :, 0].permute(0, 2, 1, 3)  # b h s d
        k = qkv[:, :, 1].permute(0, 2, 3, 1)  # b h d s
        v = qkv[:, :, 2].permute(0, 2, 1, 3)  # b h s d
        scores = torch.matmul(q, k) / math.sqrt(self.attention_head_size) + bias
        probs = self.dropout(nn.functional.softmax(scores, dim=-1))
        attention = torch.matmul(probs, v).permute(0, 2, 1, 3)  # b s h d
        return attention[attn_mask].flatten(1)  # bert_padding.unpad_input_only -> [nnz, hidden]


class BertSelfOutput(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BertUnpadAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.self = BertUnpadSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, input_tensor, attn_mask, bias):
        return self.output(self.self(input_tensor, attn_mask, bias), input_tensor)


class BertGatedLinearUnitMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.gated_layers = nn.Linear(config.hidden_size, config.intermediate_size * 2, bias=False)
        self.act = nn.GELU(approximate="none")
        self.wo = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states):
        residual_connection = hidden_states
        hidden_states = self.gated_layers(hidden_states)
        gated, non_gated = hidden_states[:, : self.intermediate_size], hidden_states[:, self.intermediate_size :]
        hidden_states = self.wo(self.dropout(self.act(gated) * non_gated))
        return self.layernorm(hidden_states + residual_connection)


class BertLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention = BertUnpadAttention(config)
        self.mlp = BertGatedLinearUnitMLP(config)

    def forward(self, hidden_states, attn_mask, bias):
        return self.mlp(self.attention(hidden_states, attn_mask, bias))


class BertEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))
        self.num_attention_heads = config.num_attention_heads

    def alibi(self, size):
        context, memory = torch.arange(size)[:, None], torch.arange(size)[None, :]
        relative_position = torch.abs(memory - context).unsqueeze(0).expand(self.num_attention_heads, -1, -1)
        slopes = torch.tensor(alibi_head_slopes(self.num_attention_heads))
        return (slopes[:, None, None] * -relative_position).unsqueeze(0)  # [1, heads, size, size]

    def forward(self, hidden_states, attention_mask):
        batch, seqlen = attention_mask.shape
        extended = (1.0 - attention_mask[:, None, None, :].to(hidden_states.dtype)) * -10000.0
        bias = extended + self.alibi(seqlen)
        mask = attention_mask.bool()
        hidden = hidden_states[mask]  # bert_padding.unpad_input: [nnz, hidden]
        for layer in self.layer:
            hidden = layer(hidden, mask, bias)
        padded = hidden.new_zeros(batch, seqlen, hidden.shape[-1])
        padded[mask] = hidden  # bert_padding.pad_input
        return padded


class BertPooler(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        return self.activation(self.dense(hidden_states[:, 0]))


class BertModel(nn.Module):
    def __init__(self, config, add_pooling_layer=True):
        super().__init__()
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None

    def forward(self, input_ids, token_type_ids, attention_mask):
        sequence_output = self.encoder(self.embeddings(input_ids, token_type_ids), attention_mask)
        return sequence_output, (self.pooler(sequence_output) if self.pooler is not None else None)


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=1e-12)

    def forward(self, hidden_states):
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, config, bert_model_embedding_weights):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(bert_model_embedding_weights.size(1), bert_model_embedding_weights.size(0))
        self.decoder.weight = bert_model_embedding_weights

    def forward(self, hidden_states):
        return self.decoder(self.transform(hidden_states))


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config, bert_model_embedding_weights):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, bert_model_embedding_weights)

    def forward(self, sequence_output):
        return self.predictions(sequence_output)


class BertForMaskedLM(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config, self.bert.embeddings.word_embeddings.weight)

    def forward(self, input_ids, token_type_ids, attention_mask):
        return self.cls(self.bert(input_ids, token_type_ids, attention_mask)[0])  # logits [b, s, vocab]


class BertForSequenceClassification(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.bert = BertModel(config)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, input_ids, token_type_ids, attention_mask):
        return self.classifier(self.dropout(self.bert(input_ids, token_type_ids, attention_mask)[1]))


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights of a trained model's scale (LayerNorms and biases too), so every mapped tensor matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if name.endswith("LayerNorm.weight") or name.endswith("layernorm.weight"):
                parameter.copy_(1 + 0.1 * noise)
            else:
                parameter.copy_(0.05 * noise)
    return model.eval()
