"""Model cards for BriskBERT artifacts, rendered from the run's own records, never typed by hand.

    records = find_records("runs/tiny/final", results="runs/eval/results.json")
    card = render_card(records, repo_id="org/briskbert-tiny")      # a huggingface_hub.ModelCard

A card reads: config.json (the architecture), the pretraining run's summary.json and config.json (recipe,
budget, training data), the fine-tuning run's results.json, the evaluation harness's results JSON
(briskbert-evaluate) and length_extrapolation.json (scripts/length_extrapolation.py). Whatever is missing is
left out of the card with a warning. The license follows the training data (trainers/data/licenses.py for corpora,
each task's registry entry for fine-tuning data): non-commercial data gives a non-commercial card. One template per
kind of artifact lives in model_cards/: `base` (pretrained from scratch), `domain` (continued pretraining),
`finetuned` (a task head) and `adapter` (PEFT).
"""

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ...modeling.heads import head_for_architecture, head_named
from ..data.licenses import DATA_LICENSES, DataLicense
from ..resources import data_path, templates_folder
from ..tasks.registry import ALIASES, KIND_HEADS, TASKS

KINDS = ("base", "domain", "finetuned", "adapter")
# PEFT task_type -> Hub pipeline tag
PEFT_PIPELINES = {"SEQ_CLS": "text-classification", "TOKEN_CLS": "token-classification",
                  "QUESTION_ANS": "question-answering", "FEATURE_EXTRACTION": "feature-extraction"}




@dataclass
class Records:
    """Everything a card is rendered from; None where the run did not leave that record."""

    folder: Path  # the model or adapter folder that is pushed
    kind: str
    model_config: dict | None  # config.json (for an adapter: None)
    adapter_config: dict | None = None
    summary: dict | None = None  # pretraining summary.json
    train_config: dict | None = None  # pretraining config.json (PretrainConfig)
    finetune: dict | None = None  # fine-tuning results.json (one task, one seed)
    results: dict | None = None  # the evaluation harness's results JSON (or the fine-tuning run, in its shape)
    results_path: Path | None = None
    extrapolation: dict | None = None
    run_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def resolve_model_folder(path) -> Path:
    """A run folder (holding final/) or the saved model/adapter folder itself."""
    path = Path(path)
    own = _read_json(path / "config.json") or {}
    if "architectures" not in own and not (path / "adapter_config.json").is_file() and (path / "final").is_dir():
        return path / "final"
    return path


def find_records(folder, results=None) -> Records:
    folder = resolve_model_folder(folder)
    adapter_config = _read_json(folder / "adapter_config.json")
    model_config = _read_json(folder / "config.json") if adapter_config is None else None
    run_dir = folder.parent
    run_config = _read_json(run_dir / "config.json") or {}
    records = Records(folder=folder, kind="base", model_config=model_config, adapter_config=adapter_config,
                      run_dir=run_dir)
    if "train_data" in run_config:  # a pretraining run's PretrainConfig
        records.train_config = run_config
        records.summary = _read_json(run_dir / "summary.json")
    run_results = _read_json(run_dir / "results.json") or {}
    if "eval" in run_results and "task" in run_results:  # briskbert-finetune's results.json
        records.finetune = run_results
    elif "tasks" in run_results and results is None:
        results = run_dir / "results.json"
    if results is not None:
        records.results_path = Path(results)
        records.results = _read_json(Path(results))
        if not isinstance(records.results, dict) or not isinstance(records.results.get("tasks"), dict):
            records.results = None
            records.warnings.append(f"results file {results} is missing or not an evaluation results JSON: the card "
                                    f"has no evaluation results")
    if records.results is None and records.finetune is not None:
        records.results = finetune_as_results(records.finetune)
    for candidate in (folder / "length_extrapolation.json", run_dir / "length_extrapolation.json"):
        if candidate.is_file():
            records.extrapolation = _read_json(candidate)
            break
    records.kind = artifact_kind(records)
    for message in records.warnings:
        warnings.warn(message, stacklevel=2)
    return records


def artifact_kind(records: Records) -> str:
    if records.adapter_config is not None:
        return "adapter"
    architecture = ((records.model_config or {}).get("architectures") or ["Model"])[0]
    if architecture.endswith(("ForMaskedLM", "Model")):
        return "domain" if (records.summary or {}).get("init_from") else "base"
    return "finetuned"


def finetune_as_results(run: dict) -> dict:
    """One fine-tuning run (briskbert-finetune's results.json) in the evaluation harness's shape."""
    tasks = {}
    for name, scored in (run.get("eval") or {}).items():
        metrics = {m: {"mean": v, "std": 0.0, "values": [v]} for m, v in (scored.get("metrics") or {}).items()
                   if isinstance(v, (int, float))}
        tasks[run["task"] if name == "__task__" else name] = {
            "dataset": run.get("dataset"), "config": run.get("dataset_config"), "split": scored.get("split"),
            "task_type": run.get("task_type"), "main_metric": run.get("main_metric"), "metrics": metrics,
            "seeds": [run.get("seed")], "hyperparameters": run.get("hyperparameters") or {},
            "train_seconds": run.get("train_seconds")}
    return {"model": run.get("model"), "revision": run.get("revision"), "tasks": tasks, "glue_average": None}


# ---- what the card says


def data_licenses(paths: list[str]) -> dict[str, DataLicense | None]:
    """Each training-data source (a file or folder under a `data/` root, or a Hub id) -> its known license.
    A folder that exists here is read file by file; otherwise every known source under its prefix counts."""
    found = {}
    for path in paths:
        local = next((p for p in (Path(path), Path(data_path(path))) if p.exists()), None)
        files = sorted(f for f in local.rglob("*") if f.is_file()) if local and local.is_dir() else [path]
        for file in files:
            normalised = str(file).replace("\\", "/").rstrip("/")
            relative = normalised[normalised.rfind("data/") + 5:] if "data/" in normalised else normalised
            matches = {key: lic for key, lic in DATA_LICENSES.items()
                       if relative.startswith(key) or key.startswith(relative + "/")}
            if not matches:
                found[relative] = None
            elif relative.startswith(tuple(matches)):  # one known file
                found[f"data/{relative}"] = next(iter(matches.values()))
            else:  # a folder we cannot list: everything known under it
                found.update({f"data/{key}*": lic for key, lic in matches.items()})
    return found


def training_data_licenses(paths: list[str]) -> dict[str, DataLicense | None]:
    """data_licenses, except that a task-adaptive text file (a tasks.json beside it names the tasks its training rows
    came from) carries those tasks' licenses."""
    found, corpora = {}, []
    for path in paths:
        tasks_file = Path(path).parent / "tasks.json"
        if Path(path).is_file() and tasks_file.is_file():
            for task in json.loads(tasks_file.read_text())["tasks"]:
                found[f"{task} (training rows, labels left out)"] = task_license(task)
        else:
            corpora.append(path)
    return {**data_licenses(corpora), **found}


def card_license(sources: dict[str, DataLicense | None]) -> dict:
    """The card's license from its data: any non-commercial source makes the model non-commercial."""
    known = [lic for lic in sources.values() if lic is not None]
    if any(lic.non_commercial for lic in known):
        name = "cc-by-nc-sa-4.0" if any(lic.non_commercial and lic.share_alike for lic in known) else "cc-by-nc-4.0"
        return {"license": name, "restriction": "non-commercial: trained on data licensed for non-commercial use only"}
    if not sources or any(lic is None or lic.unknown for lic in sources.values()):
        return {"license": "other", "license_name": "training-data-terms",
                "restriction": "some training data states no license; check the training data sources above before any use "
                               "outside research"}
    return {"license": "apache-2.0", "restriction": None}


def architecture(config: dict, parameters: int | None) -> dict:
    glu = config.get("mlp_type", "glu") == "glu"
    return {
        "layers": config.get("num_hidden_layers"), "hidden": config.get("hidden_size"),
        "heads": config.get("num_attention_heads"), "intermediate": config.get("intermediate_size"),
        "vocab": config.get("vocab_size"),
        "positions": "ALiBi (no position embeddings)" if config.get("position_embedding_type", "alibi") == "alibi"
        else f"absolute (learned, {config.get('max_position_embeddings')})",
        "mlp": f"GeGLU ({config.get('hidden_act', 'gelu')}-gated)" if glu else f"MLP ({config.get('hidden_act')})",
        "parameters": f"{parameters / 1e6:.1f}M" if parameters else "see the weights",
        "head": ((config.get("architectures") or ["BriskBertModel"])[0]),
    }


def evaluation_rows(results: dict | None) -> list[dict]:
    rows = []
    for name, entry in ((results or {}).get("tasks") or {}).items():
        if not isinstance(entry, dict):
            continue
        for metric, value in (entry.get("metrics") or {}).items():
            if not isinstance(value, dict) or not isinstance(value.get("mean"), (int, float)):
                continue
            seeds = entry.get("seeds") or value.get("values") or []
            kind = entry.get("task_type") if entry.get("task_type") in KIND_HEADS else "classification"
            rows.append({"task": name, "task_type": head_named(KIND_HEADS[kind]).task_type,
                         "dataset": entry.get("dataset") or name, "config": entry.get("config"),
                         "split": entry.get("split") or "validation", "metric": metric, "mean": value["mean"],
                         "std": value.get("std") or 0.0, "seeds": len(seeds),
                         "main": metric == entry.get("main_metric")})
    return rows


def eval_results(rows: list[dict]) -> list[EvalResult]:
    return [EvalResult(task_type=row["task_type"], dataset_type=row["dataset"], dataset_name=row["dataset"],
                       dataset_config=row["config"], dataset_split=row["split"], metric_type=row["metric"],
                       metric_name=row["metric"], metric_value=round(row["mean"], 6), task_name=row["task"])
            for row in rows]


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_id_or_none(name: str | None) -> str | None:
    """A base model the Hub can link to: an org/name id, not a local folder."""
    if name and HUB_ID.match(name) and not Path(name).exists():
        return name
    return None


def task_license(name: str) -> DataLicense | None:
    """A scored task's data license from the task registry (None for a name the registry does not know)."""
    task = TASKS.get(ALIASES.get(name, name))
    return None if task is None else task.license


def render_card(records: Records, repo_id: str, base_model: str | None = None) -> ModelCard:
    summary, train_config = records.summary or {}, records.train_config or {}
    chain = pretraining_chain(summary, train_config)  # every pretraining run that led to this model
    kind = records.kind
    config = records.model_config or {}
    head = head_for_architecture((config.get("architectures") or ["Model"])[0])
    pipeline_tag = head.pipeline_tag
    adapter = records.adapter_config or {}
    if kind == "adapter":
        pipeline_tag = PEFT_PIPELINES.get(adapter.get("task_type"), None)

    # training data: the pretraining corpus, or the fine-tuned tasks
    rows = evaluation_rows(records.results)
    if kind in ("finetuned", "adapter"):
        task_names = sorted({row["task"] for row in rows}) or ([records.finetune["task"]] if records.finetune else [])
        sources = {task: task_license(task) for task in task_names}
    else:  # every stage's text, when pretraining continued a run of its own (e.g. domain, then task text)
        sources = training_data_licenses([source for _, stage_config in chain
                                          for source in stage_config.get("train_data") or []])
    license_info = card_license(sources)
    languages = sorted({lic.language for lic in sources.values() if lic}) or ["en"]

    base = base_model or (adapter.get("base_model_name_or_path") if kind == "adapter" else None) \
        or (chain[0][0].get("init_from") if kind == "domain" else None) \
        or ((records.finetune or {}).get("model") if kind == "finetuned" else None)
    base_id = hub_id_or_none(base)
    if base and not base_id:
        warnings.warn(f"base model {base!r} is a local path, not a Hub id: the card names it but cannot link it; pass "
                      f"--base-model org/name", stacklevel=2)
    if kind == "adapter" and not base:
        raise ValueError("an adapter card must name its base model: the adapter_config.json has no "
                         "base_model_name_or_path; pass --base-model org/name")

    tags = ["briskbert", "bert", "mosaicbert", "alibi", "geglu", "encoder"]
    if kind == "domain":
        tags.append("domain-adaptation")
    if kind == "adapter":
        tags += ["peft", str(adapter.get("peft_type", "lora")).lower()]
    datasets = sorted({row["dataset"] for row in rows if hub_id_or_none(row["dataset"])})
    model_name = repo_id.split("/")[-1]
    card_data = ModelCardData(
        model_name=model_name, library_name="peft" if kind == "adapter" else "transformers",
        pipeline_tag=pipeline_tag, language=languages, license=license_info["license"],
        license_name=license_info.get("license_name"), datasets=datasets or None, base_model=base_id,
        tags=tags, eval_results=eval_results(rows) or None,
    )
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_folder())), undefined=jinja2.StrictUndefined,
                                     keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    body = environment.get_template(f"{kind}.md").render(
        repo_id=repo_id, model_name=model_name, kind=kind, base_model=base, base_model_id=base_id,
        arch=architecture(config, summary.get("parameters")) if config else None,
        auto_class=head.auto_class, pipeline_tag=pipeline_tag, summary=records.summary, train_config=records.train_config,
        training=training_budget(chain), sources=sources, license=license_info,
        rows=rows, glue_average=(records.results or {}).get("glue_average"), finetune=records.finetune,
        extrapolation=extrapolation_rows(records.extrapolation), extrapolation_record=records.extrapolation,
        adapter=adapter, hyperparameters=_hyperparameters(records.results),
    )
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")


def new_mlm_head(init_from: str | None) -> str | None:
    """What the card says of the MLM head when the checkpoint pretraining continued from had none (e.g. a converted
    sentence encoder): the head was new. None when it had one, or when it cannot be told (a hub id)."""
    config = _read_json(Path(init_from) / "config.json") if init_from else None
    architectures = (config or {}).get("architectures") or []
    if not architectures or any(name.endswith("ForMaskedLM") for name in architectures):
        return None
    return (f"new: {architectures[0]} has none, so its transform (dense, activation, LayerNorm) started fresh and "
            f"its decoder from the tied word embeddings")


def pretraining_chain(summary: dict, train_config: dict) -> list[tuple[dict, dict]]:
    """(summary, config) of each pretraining run that led to this one, the first first: a run whose `init_from` is
    the final/ folder of another briskbert-pretrain run continued that run (a domain stage, then task text)."""
    chain, seen = [(summary, train_config)] if summary else [], set()
    while chain and chain[0][0].get("init_from"):
        run_dir = Path(chain[0][0]["init_from"]).parent
        earlier, earlier_config = _read_json(run_dir / "summary.json"), _read_json(run_dir / "config.json")
        if not earlier or not earlier_config or "train_data" not in earlier_config or run_dir in seen:
            break
        seen.add(run_dir)
        chain.insert(0, (earlier, earlier_config))
    return chain


def training_budget(chain: list[tuple[dict, dict]]) -> list[tuple[str, str]]:
    """The pretraining recipe and budget as (what, value) rows, from each run's summary.json and config; a run that
    continued others gives a row per stage and quantity, "stage k, ..."."""
    rows = []
    for index, (summary, train_config) in enumerate(chain):
        texts = ", ".join("/".join(Path(source).parts[-2:]) for source in train_config.get("train_data") or [])
        label = f"stage {index + 1} ({texts}): " if len(chain) > 1 else ""
        rows += [(label + what, value) for what, value in stage_budget(summary, train_config)
                 if not (index and what in ("preset", "hardware", "precision"))]
    return rows


def stage_budget(summary: dict, train_config: dict) -> list[tuple[str, str]]:
    """One pretraining run's recipe and budget as (what, value) rows."""
    if not summary:
        return []
    rows = [("preset", summary.get("preset")), ("initialised from", summary.get("init_from") or "scratch"),
            ("masked-LM head", new_mlm_head(summary.get("init_from"))),
            ("tokens seen", f"{summary['tokens_seen']:,}" if summary.get("tokens_seen") else None),
            ("optimizer steps", summary.get("steps"))]
    if train_config:
        # a resume on another number of processes keeps the global batch and changes accumulation: the summary has it
        batch = summary.get("global_batch_size") or train_config.get("micro_batch_size", 0) \
            * train_config.get("gradient_accumulation_steps", 1) * (summary.get("num_processes") or 1)
        warmup = train_config.get("head_warmup_steps")
        rows += [("batch (rows of max_seq_length)", batch or None),
                 ("masked-LM head warm-up", f"the first {warmup} steps train the head alone (encoder frozen) at "
                                            f"{train_config.get('head_learning_rate')}" if warmup else None),
                 ("learning rate (peak), warmup", f"{train_config.get('learning_rate')}, "
                                                  f"{train_config.get('warmup_ratio')} of the steps"),
                 ("weight decay", train_config.get("weight_decay"))]
    rows += [("sequence length", summary.get("max_seq_length")),
             ("masking rate", summary.get("mlm_probability")),
             ("hardware", f"{summary.get('num_processes', 1)} x {summary.get('device')}"),
             ("precision", summary.get("mixed_precision")),
             ("wall-clock (training)", _duration(summary.get("train_seconds"))),
             ("throughput", f"{summary['tokens_per_s']:,.0f} tokens/s" if summary.get("tokens_per_s") else None),
             ("packing efficiency", f"{summary['packing_efficiency']:.1%}" if summary.get("packing_efficiency") else None),
             ("final held-out MLM loss (15% masking)",
              f"{summary['final_eval_loss']:.3f}" if summary.get("final_eval_loss") is not None else None)]
    return [(what, str(value)) for what, value in rows if value is not None]


def _duration(seconds) -> str | None:
    if seconds is None:
        return None
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def extrapolation_rows(record: dict | None) -> list[dict]:
    rows = []
    for length, entry in sorted(((record or {}).get("lengths") or {}).items(), key=lambda item: int(item[0])):
        if isinstance(entry, dict):
            rows.append({"length": int(length), "loss": entry.get("loss"), "perplexity": entry.get("perplexity"),
                         "rows": entry.get("rows"), "masked": entry.get("masked_tokens"), "note": entry.get("note")})
    return rows


def _hyperparameters(results: dict | None) -> list[tuple[str, dict]]:
    tasks = (results or {}).get("tasks") or {}
    return [(name, entry.get("hyperparameters") or {}) for name, entry in tasks.items() if isinstance(entry, dict)]
