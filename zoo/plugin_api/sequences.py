"""Padded batches of sequences: which steps are valid, and reversing each sequence within its own length."""

from __future__ import annotations

import torch


def step_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """[B, T] bool: True at the valid steps of each sequence."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence's first lengths[b] steps, leaving its padding in place (an involution)."""
    steps = x.shape[1]
    t = torch.arange(steps, device=x.device)[None, :]
    index = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
