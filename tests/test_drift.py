"""Feature drift between two encoders: linear CKA is 1 for features equal up to rotation and scale, low for unrelated
ones, and compares models with different tokenizers word by word."""

import torch

from briskbert.trainers.evaluation.drift import feature_drift, linear_cka, word_features


def test_linear_cka_is_invariant_to_rotation_and_scale_and_low_for_unrelated_features():
    torch.manual_seed(0)
    x = torch.randn(400, 16)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16))
    assert abs(linear_cka(x, 3 * x @ rotation) - 1) < 1e-9
    assert linear_cka(x, torch.randn(400, 16)) < 0.1


def test_feature_drift_is_one_for_the_same_model_and_below_one_after_training(tiny_briskbert, tmp_path, jsonl):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    sentences = [row["tokens"] for row in jsonl("biomedical/ncbi_disease/validation.jsonl", limit=24)]
    same = feature_drift(str(tiny_briskbert), str(tiny_briskbert), sentences)
    assert [row["layer"] for row in same] == list(range(len(same))) and len(same) == 3  # embeddings + 2 layers
    assert all(abs(row["cka"] - 1) < 1e-6 for row in same)
    moved = AutoModelForMaskedLM.from_pretrained(tiny_briskbert)
    with torch.no_grad():
        moved.model.layers[-1].mlp.Wo.weight.add_(torch.randn_like(moved.model.layers[-1].mlp.Wo.weight))
    moved.save_pretrained(tmp_path / "moved")
    AutoTokenizer.from_pretrained(tiny_briskbert).save_pretrained(tmp_path / "moved")
    drift = feature_drift(str(tmp_path / "moved"), str(tiny_briskbert), sentences)
    assert all(abs(row["cka"] - 1) < 1e-6 for row in drift[:-1]) and drift[-1]["cka"] < 0.99
    words = sum(len(sentence) for sentence in sentences)
    assert all(layer.shape == (words, 64) for layer in word_features(str(tiny_briskbert), sentences))
