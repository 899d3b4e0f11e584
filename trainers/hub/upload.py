"""Publish a BriskBERT folder on the Hugging Face Hub: exactly the files a user needs, with a generated card.

    push_folder("runs/tiny/final", "org/briskbert-tiny", results="runs/eval/results.json")
    push_folder(..., dry_run=True)       # list the files and sizes, write the card to <folder>/README.md, no network

What goes up (`plan_upload`): safetensors weights, config.json (its auto_map must name every class its
architectures need, and the code files those name, with their relative imports, must be there), the code
files, tokenizer files, README.md (the card, model_card.py), and the run's records when present: TensorBoard
logs (runs/), the evaluation results JSON, the length-extrapolation JSON. A PEFT adapter folder
(adapter_config.json) uploads alone, its card naming the base model. Pickle files (.bin, .pt, ...) never go up.
The token comes from huggingface_hub (HF_TOKEN or the stored login) and is never printed or written.
"""

import ast
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, get_token

from .model_card import find_records, render_card

TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                   "merges.txt", "added_tokens.json", "spiece.model", "sentencepiece.bpe.model", "chat_template.jinja"}
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib"}
RECORDS = {"eval_results.json", "length_extrapolation.json", "finetune_results.json"}


class UploadError(ValueError):
    """The folder is not fit to publish; the message says what to fix."""


@dataclass
class UploadPlan:
    folder: Path
    kind: str
    files: dict[str, Path]  # path in the repo -> local file
    card: str
    skipped: list[str] = field(default_factory=list)  # one message per file left out

    def listing(self) -> list[tuple[str, int]]:
        return [(path, self.files[path].stat().st_size) for path in sorted(self.files)]


def code_files(folder: Path, config: dict) -> list[str]:
    """The code files config.json's auto_map needs, with their relative imports; refuses an incomplete folder."""
    auto_map = config.get("auto_map") or {}
    architectures = config.get("architectures") or []
    if not auto_map:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

        if config.get("model_type") in CONFIG_MAPPING_NAMES:
            return []  # a transformers architecture: no code ships
        raise UploadError(f"{folder}/config.json has no auto_map, and model_type {config.get('model_type')!r} is not "
                          f"built into transformers: nobody could load it. Save the model with `import briskbert` done "
                          f"(it registers the classes so save_pretrained writes the code and auto_map).")
    references = [ref for value in auto_map.values() for ref in (value if isinstance(value, list) else [value]) if ref]
    classes = {ref.split(".")[-1] for ref in references}
    problems = []
    if "AutoConfig" not in auto_map:
        problems.append("auto_map has no AutoConfig entry")
    problems += [f"auto_map names no class for architecture {name!r}" for name in architectures if name not in classes]
    modules = {ref.split(".")[0] for ref in references if "--" not in ref}  # "repo--module.Class" lives elsewhere
    needed, queue = set(), sorted(modules)
    while queue:
        module = queue.pop()
        if module in needed:
            continue
        needed.add(module)
        source = folder / f"{module}.py"
        if not source.is_file():
            problems.append(f"code file {module}.py (named by auto_map or imported by another code file) is missing")
            continue
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                queue += [node.module] if node.module else [alias.name for alias in node.names]
    if problems:
        raise UploadError(f"{folder} cannot be loaded with trust_remote_code as saved:\n  - " + "\n  - ".join(problems)
                          + "\nRe-save it with save_pretrained after `import briskbert`, which writes both.")
    return sorted(f"{module}.py" for module in needed)


def plan_upload(folder, repo_id: str, results=None, base_model: str | None = None, logs: bool = True) -> UploadPlan:
    """Decide every file that goes up, render the card, write it to <folder>/README.md."""
    records = find_records(folder, results=results)
    folder = records.folder
    if not folder.is_dir():
        raise UploadError(f"{folder} is not a folder: pass the model folder written by save_pretrained (or its run).")
    files, skipped = {}, []
    present = sorted(p for p in folder.iterdir() if p.is_file())
    if records.kind == "adapter":
        weights = [p for p in present if p.name.startswith("adapter_model") and p.suffix == ".safetensors"]
        wanted = {"adapter_config.json"} | TOKENIZER_FILES
    else:
        if records.model_config is None:
            raise UploadError(f"{folder} has no config.json (nor adapter_config.json): not a saved model folder.")
        weights = [p for p in present if p.suffix == ".safetensors" or p.name.endswith(".safetensors.index.json")]
        wanted = {"config.json"} | TOKENIZER_FILES | set(code_files(folder, records.model_config))
    pickles = [p for p in present if p.suffix in PICKLE_SUFFIXES]
    if not weights:
        raise UploadError(
            f"{folder} has no safetensors weights" + (f" (only pickle files: {', '.join(p.name for p in pickles)})"
                                                      if pickles else "")
            + ": pickles are never uploaded (loading one runs arbitrary code). Re-save with save_pretrained, which "
              "writes model.safetensors.")
    for path in present:
        if path in weights or path.name in wanted:
            files[path.name] = path
        elif path.suffix in PICKLE_SUFFIXES:
            skipped.append(f"{path.name}: a pickle file, never uploaded (the safetensors weights are)")
        elif path.name not in {"README.md"} | RECORDS:
            skipped.append(f"{path.name}: not part of a model repository")
    if not any(name in files for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        skipped.append("(no tokenizer files in the folder: users will need the tokenizer from elsewhere)")

    if records.results is not None and records.results_path is not None:
        files["eval_results.json"] = records.results_path
    if records.finetune is not None:
        files["finetune_results.json"] = records.run_dir / "results.json"
    for candidate in (folder / "length_extrapolation.json", records.run_dir / "length_extrapolation.json"):
        if records.extrapolation is not None and candidate.is_file():
            files["length_extrapolation.json"] = candidate
            break
    if logs:
        for event_file in sorted(records.run_dir.rglob("events.out.tfevents.*")):
            relative = event_file.relative_to(records.run_dir)
            if relative.parts[0] not in ("checkpoints", folder.name):
                files[f"runs/{relative.as_posix()}"] = event_file

    card = str(render_card(records, repo_id, base_model=base_model))
    card = _without_token(card)
    (folder / "README.md").write_text(card)
    files["README.md"] = folder / "README.md"
    return UploadPlan(folder=folder, kind=records.kind, files=files, card=card, skipped=skipped)


def _without_token(text: str) -> str:
    token = get_token()
    if token and token in text:
        warnings.warn("the card contained the Hugging Face token; it was replaced with ***", stacklevel=2)
        text = text.replace(token, "***")
    return text


def push_folder(folder, repo_id: str, results=None, revision: str | None = None, private: bool = False,
                dry_run: bool = False, base_model: str | None = None, logs: bool = True, api=None, echo=print):
    """Publish `folder` as `repo_id` (one commit per push; the repo is created once). Returns the UploadPlan,
    with `.commit` set to the commit's URL or oid after a real push."""
    plan = plan_upload(folder, repo_id, results=results, base_model=base_model, logs=logs)
    for message in plan.skipped:
        echo(f"skip {message}")
    for path, size in plan.listing():
        echo(f"{path}\t{size:,} bytes")
    total = sum(size for _, size in plan.listing())
    if dry_run:
        echo(f"--- README.md ({plan.kind} card) ---\n{plan.card}--- end of README.md ---")
        echo(f"dry run: {len(plan.files)} files, {total:,} bytes would go to {repo_id}"
             f"{'@' + revision if revision else ''}{' (private)' if private else ''}; card written to "
             f"{plan.folder / 'README.md'}; nothing was uploaded")
        plan.commit = None
        return plan
    if api is None:
        if get_token() is None:
            raise UploadError("No Hugging Face token: set HF_TOKEN or run `hf auth login` (or use --dry-run).")
        api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(local))
                  for path, local in sorted(plan.files.items())]
    info = api.create_commit(repo_id, operations, commit_message=f"Upload {plan.kind} BriskBERT model ({len(operations)} "
                                                                 f"files)", revision=revision)
    plan.commit = getattr(info, "commit_url", None) or getattr(info, "oid", None)
    echo(f"pushed {len(plan.files)} files ({total:,} bytes) to {repo_id}{'@' + revision if revision else ''}: "
         f"{plan.commit}")
    return plan
