"""One MGU step: f = s(W_f x + U_f h), candidate = tanh(W_h x + U_h (f * h)), h' = (1 - f) h + f candidate."""

import torch
from torch import nn

from zoo.plugin_api.cells import Cell


class MGUCell(Cell):
    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size, self.state_sizes = hidden_size, (hidden_size,)
        self.input = nn.Linear(input_size, 2 * hidden_size)  # W_f x and W_h x, for all steps at once
        self.forget = nn.Linear(hidden_size, hidden_size, bias=False)
        self.candidate = nn.Linear(hidden_size, hidden_size, bias=False)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.input(x)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]):
        (h,) = state
        x_f, x_h = x_t.chunk(2, dim=-1)
        f = torch.sigmoid(x_f + self.forget(h))
        h = h + f * (torch.tanh(x_h + self.candidate(f * h)) - h)
        return h, (h,)
