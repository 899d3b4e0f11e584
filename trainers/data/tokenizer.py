"""WordPiece tokenizers for BriskBERT: train one from raw text, or extend one with a domain's word pieces.

Trained tokenizers have BERT's special tokens ([PAD] [UNK] [CLS] [SEP] [MASK], ids 0-4) and a vocabulary
padded with [unused*] tokens to a multiple of 64, and save as a standard fast tokenizer that
`AutoTokenizer.from_pretrained` loads. With BERT's own normalisation they save as `BertTokenizer`; with an
extra Unicode normalisation (NFC/NFKC) or custom normalisers, `BertTokenizer` would rebuild BERT's
normaliser on load and drop ours, so they save as the generic `TokenizersBackend`, which keeps the exact
tokenizer.json pipeline.

Extending keeps every old id: new pieces are appended after the old vocabulary, which is what lets a
pretrained model's embeddings grow (`grow_embeddings`) instead of being relearnt.

`pieces_per_word` is the number to watch for a domain tokenizer, measured the same way everywhere (this job's
report, the domain variants' tokenizer stage and their comparison). `train_tokenizer` is what
briskbert-train-tokenizer runs.
"""

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertTokenizer, PreTrainedTokenizerBase, TokenizersBackend

from ...modeling.configuration_briskbert import round_up
from ..resources import data_path
from .corpus import read_texts

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
UNICODE_NORMALIZATIONS = {"none": None, "nfc": normalizers.NFC, "nfkc": normalizers.NFKC, "nfd": normalizers.NFD,
                          "nfkd": normalizers.NFKD}
MODEL_INPUTS = ["input_ids", "token_type_ids", "attention_mask"]

# Arabic script (Tunisian written in Arabic letters): one spelling per word before WordPiece sees it.
# Tatweel (the elongation stroke) and the short-vowel/shadda diacritics are decorative or optional in
# dialect writing; alef written with hamza/madda/wasla, and hamza carried on waw or yeh, vary by writer;
# alef maksura and yeh are used interchangeably in final position. Arabizi (Latin letters with 3, 5, 7, 9
# for Arabic sounds) needs no normaliser: BERT's pre-tokenizer splits on spaces and punctuation only, so a
# digit stays inside its word ("3aslema" is one word).
ARABIC_NORMALIZERS = (
    normalizers.Replace("\u0640", ""),  # tatweel
    normalizers.Replace(Regex("[\u064B-\u0652\u0670]"), ""),  # tanwin, harakat, shadda, sukun, dagger alef
    normalizers.Replace(Regex("[\u0622\u0623\u0625\u0671]"), "\u0627"),  # آ أ إ ٱ -> ا
    normalizers.Replace("\u0624", "\u0648"),  # ؤ -> و
    normalizers.Replace("\u0626", "\u064A"),  # ئ -> ي
    normalizers.Replace("\u0649", "\u064A"),  # ى -> ي
)


def build_normalizer(cased: bool, strip_accents: bool | None, unicode_normalization: str,
                     extra: Sequence[normalizers.Normalizer] = ()) -> normalizers.Normalizer:
    if unicode_normalization not in UNICODE_NORMALIZATIONS:
        raise ValueError(
            f"unicode_normalization must be one of {sorted(UNICODE_NORMALIZATIONS)}, got {unicode_normalization!r}."
        )
    bert = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents,
                                      lowercase=not cased)
    steps = list(extra)
    unicode = UNICODE_NORMALIZATIONS[unicode_normalization]
    if unicode is not None:
        steps.append(unicode())
    return normalizers.Sequence([*steps, bert]) if steps else bert


def train_wordpiece(
    texts: Iterable[str], vocab_size: int, cased: bool = False, strip_accents: bool | None = None,
    unicode_normalization: str = "none", min_frequency: int = 2, pad_to_multiple_of: int = 64,
    extra_normalizers: Sequence[normalizers.Normalizer] = (), model_max_length: int = 512,
) -> PreTrainedTokenizerBase:
    """`strip_accents=None` follows BERT: strip accents exactly when lowercasing (uncased)."""
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}.")
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = build_normalizer(cased, strip_accents, unicode_normalization, extra_normalizers)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=SPECIAL_TOKENS, continuing_subword_prefix="##")
    tokenizer.train_from_iterator(texts, trainer)
    vocab = padded_vocab(tokenizer.get_vocab(), pad_to_multiple_of)
    custom = unicode_normalization != "none" or bool(extra_normalizers)
    return wrap(with_vocab(tokenizer, vocab), cased, strip_accents, custom, model_max_length)


def padded_vocab(vocab: dict[str, int], multiple: int) -> dict[str, int]:
    """Fill the vocabulary with [unused{i}] tokens up to a multiple of `multiple` (ids stay as they are)."""
    vocab = dict(vocab)
    target, unused = round_up(len(vocab), multiple), 0
    while len(vocab) < target:
        if f"[unused{unused}]" not in vocab:
            vocab[f"[unused{unused}]"] = len(vocab)
        unused += 1
    return vocab


def with_vocab(tokenizer: Tokenizer, vocab: dict[str, int]) -> Tokenizer:
    """A copy of `tokenizer` (same normaliser and pre-tokenizer) whose WordPiece vocabulary is `vocab`."""
    spec = json.loads(tokenizer.to_str())
    spec["model"]["vocab"] = vocab
    result = Tokenizer.from_str(json.dumps(spec))
    result.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    result.decoder = decoders.WordPiece(prefix="##")
    return result


def wrap(tokenizer: Tokenizer, cased: bool, strip_accents: bool | None, custom_normalizer: bool,
         model_max_length: int) -> PreTrainedTokenizerBase:
    specials = dict(unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    if custom_normalizer:
        return TokenizersBackend(tokenizer_object=tokenizer, model_input_names=MODEL_INPUTS,
                                 model_max_length=model_max_length, **specials)
    return BertTokenizer(tokenizer_object=tokenizer, do_lower_case=not cased, strip_accents=strip_accents,
                         model_max_length=model_max_length, **specials)


def extend_tokenizer(base: PreTrainedTokenizerBase, texts: Sequence[str], num_new_tokens: int,
                     pad_to_multiple_of: int = 64) -> tuple[PreTrainedTokenizerBase, list[str]]:
    """Append the `num_new_tokens` most used word pieces of a domain that `base` lacks; old ids are unchanged.

    Candidates come from a WordPiece vocabulary trained on the domain texts with `base`'s own normaliser and
    pre-tokenizer, ranked by how often the domain tokenization uses them.
    """
    backend = base.backend_tokenizer
    if not isinstance(backend.model, models.WordPiece):
        raise ValueError(f"Only WordPiece tokenizers can be extended; {base.name_or_path!r} uses "
                         f"{type(backend.model).__name__}.")
    old_vocab = backend.get_vocab()
    domain = Tokenizer(models.WordPiece(unk_token=base.unk_token or "[UNK]"))
    domain.normalizer, domain.pre_tokenizer = backend.normalizer, backend.pre_tokenizer
    trainer = trainers.WordPieceTrainer(vocab_size=len(old_vocab) + 4 * num_new_tokens, min_frequency=2,
                                        special_tokens=SPECIAL_TOKENS, continuing_subword_prefix="##")
    domain.train_from_iterator(texts, trainer)
    usage = Counter(token for encoding in domain.encode_batch(list(texts), add_special_tokens=False)
                    for token in encoding.tokens)
    new_tokens = [token for token, _ in usage.most_common() if token not in old_vocab][:num_new_tokens]

    vocab = dict(old_vocab)
    for token in new_tokens:
        vocab[token] = len(vocab)
    vocab = padded_vocab(vocab, pad_to_multiple_of)
    extended = with_vocab(backend, vocab)
    if isinstance(base, BertTokenizer):
        result = BertTokenizer(tokenizer_object=extended, do_lower_case=base.do_lower_case,
                               strip_accents=getattr(base, "strip_accents", None),
                               model_max_length=base.model_max_length, **base.special_tokens_map)
    else:
        result = TokenizersBackend(tokenizer_object=extended, model_input_names=MODEL_INPUTS,
                                   model_max_length=base.model_max_length, **base.special_tokens_map)
    return result, new_tokens


def grow_embeddings(model, old_tokenizer: PreTrainedTokenizerBase, new_tokenizer: PreTrainedTokenizerBase,
                    pad_to_multiple_of: int = 64) -> list[str]:
    """Resize `model`'s token embeddings (and tied decoder) for `new_tokenizer`, a size kept a multiple of 64.

    Each new token's row starts as the mean of the rows of the old pieces it used to be split into, so the
    model starts from what it already knew about that text (the decoder bias likewise).
    """
    old_vocab = old_tokenizer.get_vocab()
    new_tokens = sorted(((index, token) for token, index in new_tokenizer.get_vocab().items()
                         if token not in old_vocab and not token.startswith("[unused")))
    # rows the old vocabulary never used (its own padding to x64) are reused by new tokens first
    old_rows = model.get_input_embeddings().num_embeddings
    model.resize_token_embeddings(len(new_tokenizer), pad_to_multiple_of=pad_to_multiple_of, mean_resizing=False)
    embeddings = model.get_input_embeddings().weight
    decoder = model.get_output_embeddings()
    bias = getattr(decoder, "bias", None) if decoder is not None else None
    with torch.no_grad():
        # the added rows no token reads (padding to x64) are zero, as a conversion pads them, not random: the tied
        # decoder scores them in every softmax, and two models grown from one checkpoint stay equal
        embeddings[old_rows:] = 0
        if bias is not None:
            bias[old_rows:] = 0
        for index, token in new_tokens:
            pieces = old_tokenizer(token.removeprefix("##"), add_special_tokens=False)["input_ids"]
            pieces = pieces or [old_tokenizer.unk_token_id]
            embeddings[index] = embeddings[pieces].mean(0)
            if bias is not None and bias.shape[0] > index:
                bias[index] = bias[pieces].mean()
    return [token for _, token in new_tokens]


def pieces_per_word(tokenizer, texts: Sequence[str]) -> float:
    """Word pieces per whitespace-separated word of `texts` (special tokens not counted). Whitespace words, not each
    tokenizer's own pre-tokenized words, so two tokenizers are measured against the same count of words."""
    words = sum(len(text.split()) for text in texts)
    return round(sum(len(tokenizer.tokenize(text)) for text in texts) / max(words, 1), 3)


@dataclass
class TokenizerJob:
    """briskbert-train-tokenizer's options: train a WordPiece on text, or extend an existing tokenizer."""

    output: Path
    files: list[str] | None = None  # text/json/jsonl/parquet files or folders (.gz too)
    dataset: str | None = None  # or a hub dataset id
    dataset_config: str | None = None
    column: str = "text"
    vocab_size: int = 30528
    cased: bool = False
    strip_accents: bool | None = None  # None: BERT's rule (strip when uncased)
    unicode_normalization: str = "none"
    arabic_normalization: bool = False
    compare_with: str | None = None  # also report pieces per word of this tokenizer
    min_frequency: int = 2
    max_texts: int | None = None
    extend: str | None = None  # a tokenizer folder or hub id to extend instead of training
    num_new_tokens: int = 1000


def train_tokenizer(job: TokenizerJob) -> dict:
    """Train (or extend) and save the tokenizer to `job.output` with tokenizer_report.json; returns the report."""
    from transformers import AutoTokenizer

    texts = read_texts(job.files or job.dataset, job.column, job.max_texts, job.dataset_config)
    if not texts:
        raise SystemExit(f"No text found in column {job.column!r} of {job.files or job.dataset}.")
    sample = texts[:2000]
    report = {"texts": len(texts)}
    if job.extend:
        base = AutoTokenizer.from_pretrained(data_path(job.extend))  # data/tokenizer works from an install too
        tokenizer, new_tokens = extend_tokenizer(base, texts, job.num_new_tokens)
        report.update(base=job.extend, base_vocab=len(base), new_tokens=len(new_tokens), first_new=new_tokens[:20],
                      base_pieces_per_word=pieces_per_word(base, sample))
    else:
        tokenizer = train_wordpiece(texts, job.vocab_size, cased=job.cased, strip_accents=job.strip_accents,
                                    unicode_normalization=job.unicode_normalization, min_frequency=job.min_frequency,
                                    extra_normalizers=ARABIC_NORMALIZERS if job.arabic_normalization else ())
    report.update(vocab_size=len(tokenizer), pieces_per_word=pieces_per_word(tokenizer, sample))
    if job.compare_with:
        other = AutoTokenizer.from_pretrained(data_path(job.compare_with))
        report.update(compared_with=job.compare_with, compared_pieces_per_word=pieces_per_word(other, sample))
    output = Path(job.output)
    tokenizer.save_pretrained(output)
    (output / "tokenizer_report.json").write_text(json.dumps(report, indent=2))
    report["saved"] = f"{type(tokenizer).__name__} in {output}"
    return report
