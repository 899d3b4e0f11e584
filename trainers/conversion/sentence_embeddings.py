"""The sentence-transformers files of a BriskBERT embedding model.

A folder holding a BriskBERT (weights, code, tokenizer) becomes loadable with
`SentenceTransformer(folder, trust_remote_code=True)` once it carries `modules.json` (Transformer at the
root, then Pooling, then optionally Normalize), `sentence_bert_config.json` and `1_Pooling/config.json`.
Mean pooling over the real tokens is exactly `BriskBertModel`'s `pooler_output`; Normalize then divides
each embedding by its L2 norm.
"""

import json
import shutil
from pathlib import Path

TRANSFORMER = "sentence_transformers.models.Transformer"
POOLING = "sentence_transformers.models.Pooling"
NORMALIZE = "sentence_transformers.models.Normalize"


def write_sentence_transformers_files(folder: Path, hidden_size: int, max_seq_length: int, normalize: bool):
    """Make a saved BriskBERT folder a mean-pooling sentence-transformers model (optionally L2-normalised)."""
    folder = Path(folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": TRANSFORMER},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": POOLING},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": NORMALIZE})
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}, indent=2)
    )
    pooling = {
        "word_embedding_dimension": hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))


def find_sentence_transformers_model(folder: Path) -> tuple[Path, list[dict] | None]:
    """(the folder holding the transformers model, the modules list) for a sentence-transformers folder;
    (folder, None) for a plain transformers folder."""
    modules_file = Path(folder) / "modules.json"
    if not modules_file.exists():
        return Path(folder), None
    modules = json.loads(modules_file.read_text())
    transformers = [m for m in modules if m.get("type") == TRANSFORMER]
    if len(transformers) != 1 or modules[0] is not transformers[0]:
        raise ValueError(
            f"{modules_file} lists {len(transformers)} Transformer modules; a convertible sentence-transformers "
            f"model has exactly one, first (then Pooling and the rest)."
        )
    return Path(folder) / transformers[0]["path"], modules


def copy_sentence_transformers_modules(source: Path, modules: list[dict], output: Path):
    """Carry a sentence-transformers source's modules after the Transformer (Pooling, Dense, Normalize...) over
    unchanged, with the converted BriskBERT as the Transformer at the output's root."""
    source, output = Path(source), Path(output)
    transformer_path = source / modules[0]["path"]
    for name in ("sentence_bert_config.json",):
        if (transformer_path / name).exists():
            shutil.copy(transformer_path / name, output / name)
    if (source / "config_sentence_transformers.json").exists():
        shutil.copy(source / "config_sentence_transformers.json", output / "config_sentence_transformers.json")
    rewritten = [dict(modules[0], path="")]
    for module in modules[1:]:
        if (source / module["path"]).is_dir():
            shutil.copytree(source / module["path"], output / module["path"], dirs_exist_ok=True)
        rewritten.append(module)
    (output / "modules.json").write_text(json.dumps(rewritten, indent=2))
