"""Language and script handling that a general English tokenizer gets wrong, on real sentences (from the TArC
Tunisian corpus, the iCompass Arabizi comments and UD German-GSD): Arabic-script normalisation, Arabizi digits
kept inside words, German case and umlauts kept; with ../shared/data present, a Tunisian tokenizer trained on
the real corpus needs fewer pieces per word than BERT's."""

from pathlib import Path

import pytest
from tokenizers import normalizers

from briskbert.trainers.data.tokenizer import (
    ARABIC_NORMALIZERS,
    TokenizerJob,
    build_normalizer,
    pieces_per_word,
    train_tokenizer,
    train_wordpiece,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

# TArC (CODA Arabic script), as written, and with the variant spellings writers use for the same words
ARABIC = "انا بالرجولية كنت هابل عال خرجة"
ARABIC_VARIANTS = "أنا بالرجوليّة كُنت هابــــل عال خرجة"
ARABIZI = ["saber w barra rabbi m3ak 5ouya", "ye 9a7ba", "7ayawen pas +"]
GERMAN = ["Die Straße führt über die Brücke zum Schloß.", "Größere Änderungen wären nötig."]


def test_arabic_normalisation_unifies_spellings():
    normalizer = normalizers.Sequence(list(ARABIC_NORMALIZERS))
    assert normalizer.normalize_str(ARABIC_VARIANTS) == ARABIC
    assert normalizer.normalize_str("مشى إلى المسؤول") == "مشي الي المسوول"  # alef maksura, hamza forms
    assert normalizer.normalize_str("saber w barra") == "saber w barra"  # Latin script untouched


def test_arabizi_digits_stay_inside_words():
    tokenizer = train_wordpiece(ARABIZI * 5 + ["m3ak 5ouya 9a7ba 3aslema"] * 5, vocab_size=200,
                                min_frequency=1, extra_normalizers=ARABIC_NORMALIZERS)
    pre = tokenizer.backend_tokenizer.pre_tokenizer
    words = [w for w, _ in pre.pre_tokenize_str(tokenizer.backend_tokenizer.normalizer.normalize_str(ARABIZI[0]))]
    assert words == ["saber", "w", "barra", "rabbi", "m3ak", "5ouya"]
    # a digit is never a word start: the digit and the letters after it are one word
    assert not any(t in ("3", "5", "7", "9") for t in tokenizer.tokenize("m3ak 5ouya 9a7ba"))


def test_german_cased_tokenizer_keeps_case_umlauts_and_eszett():
    tokenizer = train_wordpiece(GERMAN * 20, vocab_size=300, cased=True, strip_accents=False, min_frequency=1,
                                unicode_normalization="nfc")
    for sentence in GERMAN:
        assert tokenizer.decode(tokenizer(sentence)["input_ids"], skip_special_tokens=True) == sentence
    uncased = build_normalizer(cased=False, strip_accents=None, unicode_normalization="none")
    assert uncased.normalize_str("Größe") == "große"  # what BERT-uncased does: case and umlauts gone


@pytest.mark.skipif(not (SHARED / "corpus" / "tunisian").is_dir(), reason="needs ../shared/data/corpus/tunisian")
def test_tunisian_tokenizer_needs_fewer_pieces_than_the_general_one(tokenizer):
    lines = [line for path in sorted((SHARED / "corpus" / "tunisian").glob("*.txt"))
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    tunisian = train_wordpiece(lines, vocab_size=8000, extra_normalizers=ARABIC_NORMALIZERS)
    sample = lines[::50]
    assert pieces_per_word(tunisian, sample) < 0.8 * pieces_per_word(tokenizer, sample)


def test_pieces_per_word_is_one_definition_for_the_tokenizer_job_and_the_variants(tmp_path, tokenizer):
    """Word pieces per whitespace word, whoever reports it: "Hello, world!" is 4 pieces over 2 words for BERT's
    tokenizer (its pre-tokenizer would count 4 words), and briskbert-train-tokenizer's report gives the number the
    domain variants' tokenizer stage and comparison give for the same tokenizer and text."""
    assert pieces_per_word(tokenizer, ["Hello, world!"]) == 2.0
    texts = [f"{line} ({n}), ja!" for n in range(40) for line in GERMAN]
    (tmp_path / "german.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    report = train_tokenizer(TokenizerJob(output=tmp_path / "tokenizer", files=[str(tmp_path / "german.txt")],
                                          vocab_size=200, cased=True, compare_with=tokenizer.name_or_path))
    from transformers import AutoTokenizer

    assert report["pieces_per_word"] == pieces_per_word(AutoTokenizer.from_pretrained(tmp_path / "tokenizer"), texts)
    assert report["compared_pieces_per_word"] == pieces_per_word(tokenizer, texts)
