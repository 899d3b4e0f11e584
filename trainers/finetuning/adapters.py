"""PEFT adapters for fine-tuning: LoRA with per-architecture default targets, or any PEFT method from a file.

`--peft lora` needs no other flag: the targets come from the model class (BriskBERT declares
`default_lora_target_modules`: its fused attention projection Wqkv, the attention output Wo and the GLU
layers Wi/Wo), else from `LORA_TARGET_MODULES` by model_type, else from PEFT's own table. The task head
(classifier, which holds BriskBERT's pooler, or qa_outputs) is trained in full and saved with the adapter
(`modules_to_save`), so an adapter folder is everything a reload needs besides the base model.
"""

import json
from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_config, get_peft_model

LORA_TARGET_MODULES = {
    "bert": ["query", "key", "value", "dense"],  # attention projections and both feed-forward layers
}
HEAD_MODULES = ("classifier", "qa_outputs", "score")


def lora_target_modules(model) -> list[str]:
    declared = getattr(model, "default_lora_target_modules", None)
    if declared:
        return list(declared)
    model_type = getattr(model.config, "model_type", None)
    if model_type in LORA_TARGET_MODULES:
        return list(LORA_TARGET_MODULES[model_type])
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS

    if model_type in PEFT_DEFAULTS:
        return list(PEFT_DEFAULTS[model_type])
    raise SystemExit(f"No default LoRA target modules for model_type {model_type!r}: write a PEFT config file "
                     f"naming them (e.g. {{\"peft_type\": \"LORA\", \"target_modules\": [\"q_proj\", \"v_proj\"]}}) "
                     f"and pass it with --peft-config.")


def head_modules(model) -> list[str]:
    """The task head's top-level modules: trained in full and saved with the adapter."""
    return [name for name, _ in model.named_children() if name in HEAD_MODULES]


def add_adapter(model, method: str | None, config_file: str | None, r: int = 8, alpha: int = 16,
                dropout: float = 0.1) -> PeftModel:
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise SystemExit(f"--peft-config {path} does not exist: give a PEFT config JSON (adapter_config.json).")
        settings = json.loads(path.read_text())
        if "peft_type" not in settings:
            raise SystemExit(f"--peft-config {path} has no 'peft_type' (e.g. \"LORA\", \"IA3\", \"LOHA\"): PEFT "
                             f"needs it to know the method.")
        peft_config = get_peft_config(settings)
        if hasattr(peft_config, "target_modules") and peft_config.target_modules is None:
            peft_config.target_modules = lora_target_modules(model)
        if hasattr(peft_config, "modules_to_save") and not peft_config.modules_to_save:
            peft_config.modules_to_save = head_modules(model)
    elif method == "lora":
        peft_config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                                 target_modules=lora_target_modules(model), modules_to_save=head_modules(model))
    else:
        raise SystemExit(f"--peft {method!r}: only 'lora' has built-in defaults; give any other PEFT method as a "
                         f"config file with --peft-config file.json.")
    return get_peft_model(model, peft_config)


def describe(model: PeftModel) -> dict:
    config = model.peft_config[model.active_adapter]
    described = {"method": str(config.peft_type.value if hasattr(config.peft_type, "value") else config.peft_type)}
    for key in ("r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save"):
        value = getattr(config, key, None)
        if value is not None:
            described[key] = sorted(value) if isinstance(value, (set, list, tuple)) else value
    return described
