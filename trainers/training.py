"""What the pretraining and fine-tuning loops share: the precision choice, the `Accelerator`, AdamW's parameter groups.

    precision = resolve_precision(config.mixed_precision)          # "auto" -> "bf16" on a bf16 GPU, else "no"
    accelerator = make_accelerator(output_dir, precision, gradient_accumulation_steps=2)
    optimizer = torch.optim.AdamW(parameter_groups(model, weight_decay=0.01), lr=...)
"""

import os
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, DistributedType
from torch.distributed.fsdp import FSDPModule

PRECISIONS = ("auto", "no", "bf16", "fp16")


def resolve_precision(mixed_precision: str) -> str:
    """accelerate's mixed_precision for "auto": bf16 autocast pays on GPUs that have it; on a CPU without bf16
    matmul units it is several times slower than fp32 (measured), so CPUs train in fp32."""
    if mixed_precision != "auto":
        return mixed_precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def make_accelerator(output_dir: Path, precision: str, gradient_accumulation_steps: int = 1,
                     unused_parameters: bool = False) -> Accelerator:
    """An Accelerator logging to TensorBoard under `output_dir`. Without a GPU the processes `accelerate launch
    --multi_gpu` starts (hub_configs/accelerate/cpu-2proc.yaml) join a gloo group on the CPU instead of each
    running alone. Denormals are flushed: on CPU, denormal values in small fresh weights (and AdamW moments) slow
    fp32 math many-fold. `unused_parameters`: some steps leave parameters without gradients (a frozen encoder), so
    DDP looks for them instead of waiting for their gradients."""
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if unused_parameters else []
    accelerator = Accelerator(cpu=torch.accelerator.current_accelerator() is None, mixed_precision=precision,
                              gradient_accumulation_steps=gradient_accumulation_steps, log_with="tensorboard",
                              project_dir=str(output_dir), kwargs_handlers=handlers)
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and \
            accelerator.distributed_type != DistributedType.FSDP:
        # accelerate keeps FSDP for GPU-like devices and runs the same config on CPU processes as plain DDP, silently
        raise SystemExit(
            f"The accelerate config asks for FSDP, but accelerate runs FSDP on GPUs only: here it would run "
            f"{accelerator.num_processes} {accelerator.device.type.upper()} processes as "
            f"{accelerator.distributed_type.value}, each holding the whole model, optimizer state and checkpoint. "
            f"On CPUs, launch with hub_configs/accelerate/cpu-2proc.yaml (DDP over gloo); keep the FSDP config for GPUs."
        )
    torch.set_flush_denormal(True)
    return accelerator


def parameter_groups(model, weight_decay: float) -> list[dict]:
    """Decay matrices only; biases and LayerNorm weights (the 1-D parameters) are left alone (BERT, MosaicBERT)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]


def check_precision(mixed_precision: str) -> list[str]:
    """The config problem, if any, for a launcher's `mixed_precision` field."""
    if mixed_precision in PRECISIONS:
        return []
    return [f"mixed_precision must be one of {PRECISIONS}, got {mixed_precision!r}"]


def savable_model(model, weights: dict) -> tuple:
    """(model, weights) to call save_pretrained(state_dict=weights) with: `model` itself, or, where FSDP2 sharded it in
    place, a plain instance of its own class. fully_shard turns the model's class into FSDP<Name>, defined in torch's
    FSDP modules, and save_pretrained would copy those modules into the folder as the model's code and point auto_map
    at them. The gathered weights hold a tied weight (the MLM decoder's) as a copy of its source, which save_pretrained
    no longer recognises as shared: it is dropped, as save_pretrained drops it from an unsharded model."""
    if not isinstance(model, FSDPModule):
        return model, weights
    own_class = next(cls for cls in type(model).__mro__ if not issubclass(cls, FSDPModule))
    tied = getattr(own_class, "_tied_weights_keys", None) or {}
    copies = {target for target, source in (tied.items() if isinstance(tied, dict) else [])
              if target in weights and source in weights and torch.equal(weights[target], weights[source])}
    return own_class(model.config), {name: tensor for name, tensor in weights.items() if name not in copies}
