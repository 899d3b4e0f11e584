"""A masked-language model's top guesses for the [MASK] of a sentence: what a model card or a report shows of what
the model has learned.

    fill_mask_folder("runs/adapted/final", ["patients with type 2 [MASK] were treated with metformin ."])
"""

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

import briskbert  # noqa: F401  (registers BriskBERT with the Auto classes, for folders saved without code)


def fill_mask(model, tokenizer, text: str, top: int = 5) -> list[str]:
    """The `top` tokens the model puts in the first [MASK] of `text` (the tokenizer's own mask token)."""
    text = text.replace("[MASK]", tokenizer.mask_token)
    probe = tokenizer([text], return_tensors="pt")
    masked = probe["input_ids"][0].tolist().index(tokenizer.mask_token_id)
    with torch.no_grad():
        logits = model(**probe).logits[0, masked]
    return tokenizer.convert_ids_to_tokens(logits[:len(tokenizer)].topk(top).indices)


def fill_mask_folder(folder, texts: list[str], top: int = 5) -> dict[str, list[str]]:
    """Each text's top guesses from the masked-language model saved in `folder`."""
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True).eval()
    return {text: fill_mask(model, tokenizer, text, top) for text in texts}
