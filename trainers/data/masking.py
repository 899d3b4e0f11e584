"""Masked-language-model corruption: which tokens to predict, and what the model sees in their place.

Special tokens ([CLS], [SEP], [PAD], ...) and padding are never chosen. With `whole_word`, a word
(a token plus the `##` continuation pieces after it) is chosen or left as a unit, so the model cannot
recover a piece from the rest of its own word. With `random_replacement`, chosen tokens become [MASK] 80%
of the time, a random token 10%, and stay unchanged 10% (BERT); without it every chosen token becomes
[MASK] (MosaicBERT). A row's mask depends only on the seed given for that row (the launcher derives it from
the run seed, the step and the row's index in the dataset), not on which batch, micro-batch or process the
row lands in: a resumed run, a run with gradient accumulation and a multi-process run all draw the masks an
uninterrupted single-process large-batch run would draw.
"""

from dataclasses import dataclass

import torch


@dataclass
class MLMMasking:
    mask_token_id: int
    special_token_ids: torch.Tensor  # ids never masked
    continuation: torch.Tensor  # bool per vocabulary id: True for a "##" word piece
    random_token_high: int  # random replacements are drawn from [0, random_token_high), specials excluded
    max_length: int  # rows are never longer; every row draws this many numbers whatever the batch padding
    whole_word: bool = False
    random_replacement: bool = False

    @classmethod
    def from_tokenizer(cls, tokenizer, max_length: int, whole_word: bool = False,
                       random_replacement: bool = False) -> "MLMMasking":
        if tokenizer.mask_token_id is None:
            raise ValueError(
                f"The tokenizer {tokenizer.name_or_path!r} has no mask token; MLM pretraining needs one "
                f"(train one with briskbert-train-tokenizer, which adds [MASK])."
            )
        vocab = tokenizer.get_vocab()
        size = max(len(tokenizer), max(vocab.values()) + 1)
        continuation = torch.zeros(size, dtype=torch.bool)
        for token, index in vocab.items():
            continuation[index] = token.startswith("##")
        return cls(
            mask_token_id=tokenizer.mask_token_id,
            special_token_ids=torch.tensor(sorted(set(tokenizer.all_special_ids))),
            continuation=continuation,
            random_token_high=size,
            max_length=max_length,
            whole_word=whole_word,
            random_replacement=random_replacement,
        )

    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rate: float, row_seeds: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (corrupted input_ids, labels) with labels = -100 where nothing is to be predicted."""
        rows, length = input_ids.shape
        if length > self.max_length or len(row_seeds) != rows:
            raise ValueError(f"Expected at most {self.max_length} tokens per row and one seed per row; got "
                             f"shape {tuple(input_ids.shape)} and {len(row_seeds)} seeds.")
        # per row: [which tokens, what replaces them, which random token]
        draws = torch.stack([
            torch.rand(3, self.max_length, generator=torch.Generator().manual_seed(seed)) for seed in row_seeds
        ])[:, :, :length]
        choose, action, random_pick = draws.unbind(1)
        maskable = attention_mask.bool() & ~torch.isin(input_ids, self.special_token_ids)
        if self.whole_word:
            # one draw per word: every piece takes the draw of the token that starts its word
            starts = maskable & ~self.continuation[input_ids]
            word_index = torch.cummax(torch.where(starts, torch.arange(length), 0), dim=1).values
            choose = choose.gather(1, word_index)
        chosen = maskable & (choose < rate)
        labels = torch.where(chosen, input_ids, -100)

        corrupted = input_ids.clone()
        if not self.random_replacement:
            corrupted[chosen] = self.mask_token_id
            return corrupted, labels
        corrupted[chosen & (action < 0.8)] = self.mask_token_id
        random_slots = chosen & (action >= 0.8) & (action < 0.9)
        random_tokens = (random_pick * self.random_token_high).long().clamp(max=self.random_token_high - 1)
        # a random replacement is never a special token: those become [MASK] instead
        random_tokens = torch.where(torch.isin(random_tokens, self.special_token_ids), self.mask_token_id, random_tokens)
        corrupted[random_slots] = random_tokens[random_slots]
        return corrupted, labels
