"""How weights move: the optimizer over layer groups, the learning-rate schedule (a pure function of the step),
discriminative rates and gradual unfreezing, the update with its finiteness checks, and the weight average."""

from __future__ import annotations

import math

import torch

from zoo.config.sections import TrainConfig
from zoo.errors import ZooError

LAYER_GROUPS = ("head", "encoder", "embedding")  # top down: the order of discriminative rates and unfreezing


class NonFiniteError(ZooError):
    """The loss, the gradients or the weights stopped being finite numbers."""


def learning_rate(step: int, total: int, config: TrainConfig) -> float:
    """Linear warmup over warmup_fraction of the steps, then constant, cosine or linear decay to 0."""
    warmup = int(total * config.warmup_fraction)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if config.schedule == "constant":
        return config.lr
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.lr * (1.0 - progress)


def layer_group(parameter_name: str) -> str:
    """embedding.* -> embedding, encoder.* -> encoder, everything else (pooling head, LM head) -> head."""
    first = parameter_name.split(".", 1)[0]
    return first if first in ("embedding", "encoder") else "head"


def group_scale(layer: str, step: int, total: int, config: TrainConfig) -> float:
    """The factor on a layer group's learning rate: discriminative rates (lr_decay per group below the head)
    times 0 while the group is still frozen (gradual unfreezing: one more group every unfreeze_fraction)."""
    depth = LAYER_GROUPS.index(layer)
    if config.unfreeze_fraction and step < depth * config.unfreeze_fraction * total:
        return 0.0
    return config.lr_decay ** -depth


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW over one group per layer group and decay kind; weight decay skips biases, norms and
    embeddings (1-d and embedding tensors). Each group remembers its `layer` for `set_learning_rates`."""
    groups: dict[tuple[str, bool], list] = {}
    for name, param in model.named_parameters():
        decays = not (param.ndim < 2 or name.startswith("embedding."))
        groups.setdefault((layer_group(name), decays), []).append(param)
    param_groups = [{"params": params, "weight_decay": config.weight_decay if decays else 0.0, "layer": layer}
                    for (layer, decays), params in groups.items()]
    if config.optimizer == "adam":
        return torch.optim.Adam(param_groups, lr=config.lr)
    return torch.optim.AdamW(param_groups, lr=config.lr)


def set_learning_rates(optimizer: torch.optim.Optimizer, rate: float, step: int, total: int,
                       config: TrainConfig) -> None:
    for group in optimizer.param_groups:
        group["lr"] = rate * group_scale(group["layer"], step, total, config)


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_sum: float, config: TrainConfig,
                   step: int, where: str) -> None:
    """One update after the backward pass: the loss and the clipped gradient norm checked finite first, so that
    a diverging step changes no weight. `where` says what the user still has (require_finite)."""
    require_finite(loss_sum, "loss", step, where)
    if config.grad_clip:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        require_finite(float(norm), "gradient norm", step, where)
    optimizer.step()


def require_finite(value: float, what: str, step: int, where: str) -> None:
    if not math.isfinite(value):
        raise NonFiniteError(
            f"training diverged at step {step}: the {what} is {value}. Nothing from this step was saved: {where}. "
            "Train again with a lower --lr or --set train.grad_clip=1.0")


def weights_finite(model: torch.nn.Module) -> float:
    """0.0 when every parameter is finite, else nan (for require_finite)."""
    return 0.0 if all(bool(torch.isfinite(p).all()) for p in model.parameters()) else math.nan


def weight_average(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of the weights, its decay warmed up as (1 + n) / (10 + n) after n updates."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
        n = int(updates)
        torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1 + n) / (10 + n)))

    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=update, use_buffers=True)
