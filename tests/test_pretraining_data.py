"""The pretraining data path on real text: packing keeps documents apart, MLM masking obeys its rates and
never touches special tokens, the sampler shards and resumes exactly, and trained tokenizers round-trip."""

import json
from collections import Counter

import pytest
import torch
from torch.testing import assert_close
from transformers import AutoTokenizer, BertConfig, BertModel

from briskbert import BriskBertConfig, BriskBertModel
from briskbert.trainers.data.corpus import load_corpus, resolve_files, tokenize_and_pack
from briskbert.trainers.data.masking import MLMMasking
from briskbert.trainers.data.packing import block_diagonal_inputs, collate_rows, pack_documents, packing_efficiency
from briskbert.trainers.data.sampling import GlobalOrderBatchSampler
from briskbert.trainers.data.tokenizer import extend_tokenizer, grow_embeddings, train_wordpiece

CORPUS = "data/corpus/en/us_inaugural_addresses.txt"


@pytest.fixture(scope="module")
def documents(data_dir) -> list[str]:
    lines = (data_dir / "corpus/en/us_inaugural_addresses.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip()]


@pytest.fixture(scope="module")
def packed(tokenizer, documents):
    """Eight real paragraphs of very different lengths (one longer than a row), packed into rows of 64."""
    chosen = sorted(documents[:40], key=len)[::5]
    ids = tokenizer(chosen, add_special_tokens=False)["input_ids"]
    assert max(map(len, ids)) > 62, "the sample should include a document that must be split"
    return ids, pack_documents({"input_ids": ids}, 64, tokenizer.cls_token_id, tokenizer.sep_token_id)


def segments_of(row_ids, row_segments):
    out = {}
    for token, segment in zip(row_ids, row_segments):
        out.setdefault(segment, []).append(token)
    return list(out.values())


def test_packing_wraps_splits_and_fills_rows(tokenizer, packed):
    ids, rows = packed
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert all(len(row) <= 64 for row in rows["input_ids"])
    segments = [s for r, q in zip(rows["input_ids"], rows["sequence_ids"]) for s in segments_of(r, q)]
    assert all(s[0] == cls and s[-1] == sep for s in segments)
    # every token of every document is there exactly once, in order within its document
    bodies = Counter(tuple(s[1:-1]) for s in segments)
    expected = Counter(tuple(doc[i:i + 62]) for doc in ids for i in range(0, len(doc), 62))
    assert bodies == expected
    lengths = [len(r) for r in rows["input_ids"]]
    assert packing_efficiency(lengths, 64) == sum(lengths) / (64 * len(lengths))
    assert len(rows["input_ids"]) < len(segments), "short documents should share rows"


@pytest.mark.parametrize("architecture", ["briskbert", "bert"])
def test_packed_documents_never_attend_to_each_other(tokenizer, packed, architecture):
    """Each packed segment's outputs equal those of the same segment run alone."""
    _, rows = packed
    torch.manual_seed(0)
    if architecture == "briskbert":
        model = BriskBertModel(BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer))).eval()
    else:
        model = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=128), add_pooling_layer=False).eval()
    batch = collate_rows([{"input_ids": i, "sequence_ids": s} for i, s in zip(rows["input_ids"], rows["sequence_ids"])],
                         tokenizer.pad_token_id)
    with torch.no_grad():
        if architecture == "briskbert":
            packed_out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               sequence_ids=batch["sequence_ids"]).last_hidden_state
        else:
            packed_out = model(**block_diagonal_inputs(batch)).last_hidden_state
        for r, (row_ids, row_segments) in enumerate(zip(rows["input_ids"], rows["sequence_ids"])):
            start = 0
            for segment in segments_of(row_ids, row_segments):
                alone = model(input_ids=torch.tensor([segment])).last_hidden_state[0]
                assert_close(packed_out[r, start:start + len(segment)], alone, atol=2e-5, rtol=1e-4)
                start += len(segment)


@pytest.fixture(scope="module")
def real_batch(tokenizer, documents):
    texts = documents[:48]
    rows = pack_documents({"input_ids": tokenizer(texts, add_special_tokens=False)["input_ids"]}, 128,
                          tokenizer.cls_token_id, tokenizer.sep_token_id)
    return collate_rows([{"input_ids": i, "sequence_ids": s} for i, s in zip(rows["input_ids"], rows["sequence_ids"])],
                        tokenizer.pad_token_id)


def test_masking_rate_and_special_tokens(tokenizer, real_batch):
    masking = MLMMasking.from_tokenizer(tokenizer, max_length=128)
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids)) | ~mask.bool()
    for rate in (0.15, 0.30):
        corrupted, labels = masking(ids, mask, rate, list(range(len(ids))))
        chosen = labels != -100
        assert not (chosen & special).any(), "special tokens and padding must never be masked"
        assert abs(chosen.sum().item() / (~special).sum().item() - rate) < 0.03
        assert (corrupted[chosen] == tokenizer.mask_token_id).all()  # MosaicBERT: every chosen token -> [MASK]
        assert (labels[chosen] == ids[chosen]).all() and (corrupted[~chosen] == ids[~chosen]).all()


def test_masking_80_10_10(tokenizer, real_batch):
    masking = MLMMasking.from_tokenizer(tokenizer, max_length=128, random_replacement=True)
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    counts = Counter()
    for repeat in range(6):
        corrupted, labels = masking(ids, mask, 0.3, [repeat * 1000 + r for r in range(len(ids))])
        chosen = labels != -100
        counts["mask"] += (corrupted[chosen] == tokenizer.mask_token_id).sum().item()
        counts["kept"] += (corrupted[chosen] == ids[chosen]).sum().item()
        counts["all"] += chosen.sum().item()
        assert not torch.isin(corrupted[chosen & (corrupted != tokenizer.mask_token_id)],
                              torch.tensor(tokenizer.all_special_ids)).any()
    assert abs(counts["mask"] / counts["all"] - 0.8) < 0.03
    assert abs(counts["kept"] / counts["all"] - 0.1) < 0.03  # (plus the rare random draw of the same token)


def test_whole_word_masking_takes_whole_words(tokenizer, real_batch):
    masking = MLMMasking.from_tokenizer(tokenizer, max_length=128, whole_word=True)
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    _, labels = masking(ids, mask, 0.3, list(range(len(ids))))
    continuation = masking.continuation[ids] & mask.bool()
    assert continuation.sum() > 20, "the sample should contain words split into pieces"
    # a "##" piece is masked exactly when the token before it (same word) is; a segment split off a long
    # document may start mid-word, right after [CLS], and is then its own unit
    chosen = labels != -100
    maskable = mask.bool() & ~torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    inside_word = continuation[:, 1:] & maskable[:, :-1]
    assert (chosen[:, 1:][inside_word] == chosen[:, :-1][inside_word]).all()
    tokens = maskable.sum()
    assert abs(chosen.sum().item() / tokens.item() - 0.3) < 0.05


def test_masks_do_not_depend_on_batch_layout(tokenizer, real_batch):
    """A row gets the same mask alone or in a batch, padded or not: so grad accumulation and multi-process
    runs see exactly what one large batch would."""
    masking = MLMMasking.from_tokenizer(tokenizer, max_length=128)
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    seeds = [11 * r + 3 for r in range(len(ids))]
    _, together = masking(ids, mask, 0.3, seeds)
    for r in (0, len(ids) - 1):
        length = int(mask[r].sum())
        _, alone = masking(ids[r:r + 1, :length], mask[r:r + 1, :length], 0.3, seeds[r:r + 1])
        assert torch.equal(alone[0], together[r, :length])


def rows_per_step(num_rows, micro, processes, accumulation, steps, seed=5) -> list[list[int]]:
    """The rows all processes read at each of `steps`, as a launch of that shape reads them."""
    samplers = [iter(GlobalOrderBatchSampler(num_rows, micro, seed, rank, processes, accumulation,
                                             start_step=steps.start)) for rank in range(processes)]
    read = []
    for _ in steps:
        read.append([row for sampler in samplers for _ in range(accumulation) for row in next(sampler)])
    return read


def test_the_data_order_does_not_depend_on_the_number_of_processes():
    """One process x 16 rows, 2 x 8, 4 x 2 x 2 accumulation: each step reads the same rows; every row once per epoch;
    a run interrupted at step 7 on 2 processes and resumed on 1 or 4 reads exactly the rows that remain."""
    num_rows, steps = 103, range(20)  # 320 rows: the stream runs into its fourth epoch
    one = rows_per_step(num_rows, 16, 1, 1, steps)
    stream = sum(one, [])
    assert all(len(set(step)) == 16 for step in one[:6]), "a step inside one epoch reads each row once"
    for epoch in range(3):
        assert sorted(stream[epoch * num_rows:(epoch + 1) * num_rows]) == list(range(num_rows)), epoch
    assert [sorted(step) for step in rows_per_step(num_rows, 8, 2, 1, steps)] == [sorted(step) for step in one]
    assert [sorted(step) for step in rows_per_step(num_rows, 2, 4, 2, steps)] == [sorted(step) for step in one]
    for resumed_on, micro, accumulation in ((1, 4, 4), (4, 4, 1)):
        interrupted = rows_per_step(num_rows, 8, 2, 1, range(7))
        resumed = rows_per_step(num_rows, micro, resumed_on, accumulation, range(7, 20))
        assert sorted(sum(interrupted + resumed, [])) == sorted(stream)
        assert [sorted(step) for step in interrupted + resumed] == [sorted(step) for step in one]
    with pytest.raises(ValueError, match="fewer than one step's global batch of 32"):
        GlobalOrderBatchSampler(20, 4, seed=0, num_processes=4, accumulation=2)


def test_corpus_loading_from_files_and_errors(tmp_path, tokenizer, data_dir):
    (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps({"body": t}) for t in ["One doc.", "Another one."]))
    with pytest.raises(ValueError, match="no column 'text'.*'body'"):
        load_corpus(str(tmp_path / "docs.jsonl"))
    rows = tokenize_and_pack(load_corpus(str(tmp_path / "docs.jsonl"), text_column="body"), tokenizer, 32, "body")
    lengths = [len(tokenizer(t)["input_ids"]) for t in ["One doc.", "Another one."]]
    assert list(rows["sequence_ids"]) == [[0] * max(lengths) + [1] * min(lengths)]  # longest first (FFD)
    assert rows["row_id"] == list(range(len(rows)))
    # the same documents as gzip-compressed text and as parquet
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    with gzip.open(tmp_path / "docs.txt.gz", "wt") as handle:
        handle.write("One doc.\n\nAnother one.\n")
    pq.write_table(pa.table({"text": ["One doc.", "Another one."]}), tmp_path / "docs.parquet")
    for name in ("docs.txt.gz", "docs.parquet"):
        again = tokenize_and_pack(load_corpus(str(tmp_path / name)), tokenizer, 32)
        assert again["input_ids"] == rows["input_ids"], name
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_files([str(tmp_path / "missing.txt")])
    assert resolve_files("allenai/c4") is None  # a hub id goes to datasets.load_dataset
    assert resolve_files(str(data_dir / "corpus" / "en")) == [data_dir / CORPUS.removeprefix("data/")]


def test_train_wordpiece_round_trips(tmp_path, documents):
    tokenizer = train_wordpiece(documents, vocab_size=2000)
    assert len(tokenizer) % 64 == 0 and len(tokenizer) >= 2000
    assert [tokenizer.convert_ids_to_tokens(i) for i in range(5)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.save_pretrained(tmp_path / "uncased")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "uncased")
    text = "We the People of the United States, in Order to form a more perfect Union"
    assert reloaded(text, "a second segment") == tokenizer(text, "a second segment")
    assert reloaded.decode(reloaded(text)["input_ids"], skip_special_tokens=True) == text.lower()
    assert type(reloaded).__name__ == "BertTokenizer" and reloaded.mask_token == "[MASK]"

    cased = train_wordpiece(documents + ["Größe über Straße café"] * 3, vocab_size=2000, cased=True,
                            unicode_normalization="nfkc")
    cased.save_pretrained(tmp_path / "cased")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "cased")
    assert reloaded.tokenize("Straße ﬁnal") == cased.tokenize("Straße ﬁnal")
    assert reloaded.decode(reloaded("Größe über Straße")["input_ids"], skip_special_tokens=True) == "Größe über Straße"
    assert reloaded.tokenize("ﬁnal") == reloaded.tokenize("final")  # NFKC survives the save: ligature folded
    assert "token_type_ids" in reloaded("a", "b")


def test_extend_tokenizer_keeps_ids_and_grows_embeddings(tokenizer, data_dir):
    from briskbert import BriskBertForMaskedLM

    abstracts = [line for line in (data_dir / "glue/rte/validation.jsonl").read_text().splitlines()][:200]
    texts = [json.loads(line)["sentence1"] for line in abstracts]
    extended, new_tokens = extend_tokenizer(tokenizer, texts, num_new_tokens=40)
    assert len(new_tokens) == 40 and len(extended) % 64 == 0
    old, new = tokenizer.get_vocab(), extended.get_vocab()
    assert all(new[token] == index for token, index in old.items()), "old ids must not move"
    assert all(new[token] >= len(tokenizer) for token in new_tokens)

    torch.manual_seed(0)
    model = BriskBertForMaskedLM(BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer)))
    before = model.get_input_embeddings().weight.detach().clone()
    grown = grow_embeddings(model, tokenizer, extended)
    assert sorted(grown) == sorted(new_tokens)
    weight = model.get_input_embeddings().weight
    assert weight.shape[0] % 64 == 0 and weight.shape[0] >= len(extended)
    assert model.get_output_embeddings().weight is weight, "the MLM decoder stays tied"
    assert_close(weight[: len(tokenizer)], before[: len(tokenizer)])
    token = new_tokens[0]
    pieces = tokenizer(token.removeprefix("##"), add_special_tokens=False)["input_ids"]
    assert_close(weight[extended.convert_tokens_to_ids(token)], before[pieces].mean(0))
