"""Cell plugins: the author writes one recurrent step; the zoo supplies the sequence machinery.

A cell is a `torch.nn.Module` (subclass `Cell` or not) with

- `state_sizes: tuple[int, ...]`: one entry per state tensor, each `[B, size]`, all
  zero at the first step (an LSTM has `(hidden, hidden)`, a GRU `(hidden,)`);
- `hidden_size: int`: the size of the output `h_t`;
- `step(x_t, state) -> (h_t, new_state)`: `x_t` is `[B, P]`, `state` and `new_state`
  tuples matching `state_sizes`, `h_t` is `[B, hidden_size]`. It must be traceable
  by torch.onnx: tensor ops only, no Python branches on tensor values;
- optionally `project(x) -> [B, T, P]`: a computation on all steps at once,
  hoisted out of the time loop (typically the input projections `x W + b`, as
  fused kernels do); without it `step` sees the embeddings themselves.

`CellEncoder` wraps cells built per layer and direction into an encoder that meets
the encoder contract: the time loop, the state frozen after each review's length
(padding-exact by construction), zero outputs at padded steps, `num_layers` with
dropout between layers, and `bidirectional` (the backward direction runs over
each review reversed within its own length). The ONNX lowering of any
CellEncoder is zoo.exporters.onnx.scan.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from zoo.errors import PluginError
from zoo.plugin_api.sequences import reverse_within_length, step_mask


class Cell(nn.Module):
    """Optional base class for cells: declares the members and leaves `project` as the identity."""

    state_sizes: tuple[int, ...] = ()
    hidden_size: int = 0

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        raise NotImplementedError("a cell defines step(x_t, state) -> (h_t, new_state)")


def check_cell(cell: object, where: str) -> None:
    """Raise PluginError saying what a built cell lacks."""
    if not isinstance(cell, nn.Module):
        raise PluginError(f"{where}: build_cell() must return a torch.nn.Module, got {type(cell).__name__}")
    sizes = getattr(cell, "state_sizes", None)
    if not (isinstance(sizes, tuple) and sizes and all(isinstance(s, int) and s > 0 for s in sizes)):
        raise PluginError(f"{where}: the cell's `state_sizes` must be a non-empty tuple of positive ints, got {sizes!r}")
    hidden = getattr(cell, "hidden_size", None)
    if not (isinstance(hidden, int) and hidden > 0):
        raise PluginError(f"{where}: the cell's `hidden_size` must be a positive int, got {hidden!r}")
    if not callable(getattr(cell, "step", None)):
        raise PluginError(f"{where}: the cell needs a method step(x_t, state) -> (h_t, new_state)")


def project(cell: nn.Module, x: torch.Tensor) -> torch.Tensor:
    hoisted = getattr(cell, "project", None)
    return hoisted(x) if callable(hoisted) else x


def initial_state(cell: nn.Module, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(like.new_zeros(batch, size) for size in cell.state_sizes)


def checked_step(cell: nn.Module, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]):
    """One step, with the contract checked: the first call of each forward pass goes through here."""
    result = cell.step(x_t, state)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise ValueError("step() must return a pair (h_t, new_state)")
    h, new_state = result
    if not isinstance(new_state, (tuple, list)) or len(new_state) != len(cell.state_sizes):
        got = len(new_state) if isinstance(new_state, (tuple, list)) else type(new_state).__name__
        raise ValueError(f"step() returned {got} state tensors; state_sizes has {len(cell.state_sizes)}")
    batch = x_t.shape[0]
    if tuple(h.shape) != (batch, cell.hidden_size):
        raise ValueError(f"step() returned h_t of shape {list(h.shape)}, expected [{batch}, {cell.hidden_size}]")
    for s, size in zip(new_state, cell.state_sizes):
        if tuple(s.shape) != (batch, size):
            raise ValueError(f"step() returned a state of shape {list(s.shape)}, expected [{batch}, {size}]")
    return h, tuple(new_state)


def run_cell(cell: nn.Module, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """[B, T, hidden] outputs of `cell` over `x` [B, T, E]; `valid` [B, T, 1] bool freezes the state past each length."""
    batch, steps = x.shape[0], x.shape[1]
    inputs = project(cell, x).unbind(1)
    masks = valid.unbind(1)
    state = initial_state(cell, batch, x)
    outputs = []
    for t in range(steps):
        h, new_state = checked_step(cell, inputs[t], state) if t == 0 else cell.step(inputs[t], state)
        state = tuple(torch.where(masks[t], new, old) for new, old in zip(new_state, state))
        outputs.append(h)
    if not outputs:
        return x.new_zeros(batch, 0, cell.hidden_size)
    return torch.stack(outputs, dim=1) * valid.to(x.dtype)


class CellEncoder(nn.Module):
    """Layers x directions of one cell type, meeting the encoder contract (see the module docstring)."""

    def __init__(self, make_cell: Callable[[int], nn.Module], input_size: int, num_layers: int, dropout: float,
                 bidirectional: bool, where: str = "cell plugin"):
        super().__init__()
        directions = 2 if bidirectional else 1
        self.layers = nn.ModuleList()
        self.input_sizes: list[int] = []  # what each layer's cells read (the ONNX lowering needs it)
        size = input_size
        for _ in range(num_layers):
            self.input_sizes.append(size)
            built = [make_cell(size) for _ in range(directions)]
            for cell in built:
                check_cell(cell, where)
            cells = nn.ModuleList(built)
            if len({c.hidden_size for c in cells}) != 1:
                raise PluginError(f"{where}: the cells of one layer must share a hidden_size")
            self.layers.append(cells)
            size = directions * cells[0].hidden_size
        self.dropout = nn.Dropout(dropout)
        self.bidirectional = bidirectional
        self.output_size = size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = step_mask(lengths, x.shape[1]).unsqueeze(-1)
        h = x
        for depth, cells in enumerate(self.layers):
            if depth:
                h = self.dropout(h)
            outputs = [run_cell(cells[0], h, valid)]
            if self.bidirectional:
                backward = run_cell(cells[1], reverse_within_length(h, lengths), valid)
                outputs.append(reverse_within_length(backward, lengths))
            h = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
        return h
