"""How far continued pretraining moved an encoder's features: linear CKA (Kornblith et al. 2019) between two models'
hidden states of the same words, layer by layer.

    drift = feature_drift("runs/adapted/final", "runs/converted", sentences)   # [{"layer": 0, "cka": 0.99}, ...]

Each word is represented by its first word piece's hidden state, the one a token-classification head reads, so two
models with different tokenizers (one extended with a domain's pieces) are compared on the same words. CKA is 1 for
features equal up to a rotation and scale, and falls as they move apart.
"""

import torch
from transformers import AutoModel, AutoTokenizer

import briskbert  # noqa: F401  (registers BriskBERT with the Auto classes, for folders saved without code)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two [examples, features] matrices (features centred over the examples)."""
    x = (x - x.mean(0)).double()
    y = (y - y.mean(0)).double()
    cross = (y.T @ x).norm() ** 2
    return (cross / ((x.T @ x).norm() * (y.T @ y).norm())).item()


def word_features(model_dir: str, sentences: list[list[str]], batch_size: int = 32) -> list[torch.Tensor]:
    """Per layer (embeddings first), the hidden state of each word's first piece: [words, hidden] each."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    model = AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
    layers = None
    for start in range(0, len(sentences), batch_size):
        words = sentences[start:start + batch_size]
        batch = tokenizer(words, is_split_into_words=True, padding=True, return_tensors="pt")
        firsts = [[index for index, word in enumerate(batch.word_ids(row))
                   if word is not None and (index == 0 or batch.word_ids(row)[index - 1] != word)]
                  for row in range(len(words))]
        with torch.no_grad():
            hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           output_hidden_states=True).hidden_states
        chosen = [torch.cat([state[row, positions] for row, positions in enumerate(firsts)]) for state in hidden]
        layers = chosen if layers is None else [torch.cat([a, b]) for a, b in zip(layers, chosen)]
    return layers


def feature_drift(model_dir: str, reference_dir: str, sentences: list[list[str]]) -> list[dict]:
    """Linear CKA between `model_dir`'s and `reference_dir`'s word features at every layer (0: the embeddings)."""
    ours, reference = word_features(model_dir, sentences), word_features(reference_dir, sentences)
    if len(ours) != len(reference):
        raise ValueError(f"{model_dir} has {len(ours) - 1} layers and {reference_dir} {len(reference) - 1}: "
                         f"compare checkpoints of one architecture.")
    if ours[0].shape[0] != reference[0].shape[0]:
        raise ValueError("the two tokenizers disagree on the words of the sentences: pass pre-split words")
    return [{"layer": layer, "cka": round(linear_cka(x, y), 4)} for layer, (x, y) in enumerate(zip(ours, reference))]
