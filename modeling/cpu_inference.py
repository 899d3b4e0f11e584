"""CPU-inference tunings of the forward pass, kept here so the model file reads as the math; a reader may skip this.

Each function computes what the plain expression in its docstring computes, and takes its faster path only where no
autograd graph is being built (so training, and any gradient a user asks for, see the plain expression). Each was
kept because paired A/B runs of the whole model measured it faster (the figures are in the project's docs/speed.md,
"Tunings measured behind the code"):
- the in-place residual add and gating: one [tokens, hidden] and one [tokens, intermediate] buffer less per block,
  the same bits;
- the GLU input projection as two half-width matmuls: MKL writes one [tokens, 2 * intermediate] output slower than
  two contiguous halves, and it is the model's biggest matmul; equal to rounding (the halves are summed in another
  order). briskbert's int8 Linear computes its own halves the same way, and gains more from it.
"""

import torch
import torch.nn.functional as F
from torch import nn


def residual_add(hidden: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    """hidden + update; without autograd the sum goes into `update`, a fresh activation."""
    return hidden + update if torch.is_grad_enabled() else update.add_(hidden)


def gate(activated_gate: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """activated_gate * value; without autograd into `activated_gate`, a fresh activation."""
    return activated_gate * value if torch.is_grad_enabled() else activated_gate.mul_(value)


def gate_and_value(projection: nn.Module, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """projection(hidden).chunk(2, -1): the GLU's gate and value, each [tokens, intermediate]. At CPU inference, two
    half-width matmuls that each write a contiguous output: on a plain Linear from its weight's halves; a module
    that computes its own halves (`forward_halves`, e.g. briskbert's int8 Linear) is asked for them."""
    if torch.is_grad_enabled() or hidden.device.type != "cpu":
        return projection(hidden).chunk(2, dim=-1)
    if is_plain_linear(projection):
        gate_weight, value_weight = projection.weight.chunk(2)
        return F.linear(hidden, gate_weight), F.linear(hidden, value_weight)
    if hasattr(projection, "forward_halves") and not has_hooks(projection):
        return projection.forward_halves(hidden)
    return projection(hidden).chunk(2, dim=-1)


def is_plain_linear(module: nn.Module) -> bool:
    """Whether calling `F.linear` on the module's weight is the same as calling the module: a bare nn.Linear
    without bias, hooks or a patched forward. A PEFT adapter, a quantized layer or accelerate's offloading hook
    changes what the call does, so they get the module call."""
    return (
        type(module) is nn.Linear
        and module.bias is None
        and not has_hooks(module)
    )


def has_hooks(module: nn.Module) -> bool:
    """Whether calling the module does more than its class's forward: forward hooks or a patched forward."""
    return bool(module._forward_hooks or module._forward_pre_hooks or "forward" in vars(module))
