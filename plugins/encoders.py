"""Torch encoders of the built-in architectures, all padding-exact on padded batches.

They run on padded `[B, T, E]` batches (no pack_padded_sequence: on CPU that
leaves the fused oneDNN kernel and is ~40x slower). A forward recurrence is
causal, so steps past a review's end cannot reach its outputs; the backward
direction of the BiLSTM runs forward over each review reversed within its own
length, which makes it exact too.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo.plugin_api.cells import Cell
from zoo.plugin_api.sequences import reverse_within_length, step_mask


class CausalRNNEncoder(nn.Module):
    """A stack of forward nn.LSTM or nn.GRU layers (fused kernels), masked at padded steps."""

    bidirectional = False

    def __init__(self, rnn: nn.LSTM | nn.GRU):
        super().__init__()
        self.rnn = rnn
        self.output_size = rnn.hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(x)
        return outputs * step_mask(lengths, x.shape[1]).unsqueeze(-1).to(outputs.dtype)


class BiLSTMEncoder(nn.Module):
    """Bidirectional LSTM whose backward direction starts at each review's own last token."""

    bidirectional = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        sizes = [input_size] + [2 * hidden_size] * (num_layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(s, hidden_size, batch_first=True) for s in sizes)
        self.backward_layers = nn.ModuleList(nn.LSTM(s, hidden_size, batch_first=True) for s in sizes)
        self.dropout = nn.Dropout(dropout)
        self.hidden_size = hidden_size
        self.output_size = 2 * hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = step_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)
        h = x
        for depth, (fw, bw) in enumerate(zip(self.forward_layers, self.backward_layers)):
            if depth:
                h = self.dropout(h)
            ahead, _ = fw(h)
            behind, _ = bw(reverse_within_length(h, lengths))
            h = torch.cat([ahead, reverse_within_length(behind, lengths)], dim=-1) * mask
        return h


class PeepholeLSTMCell(Cell):
    """One step of an LSTM with peepholes, in ONNX's formulation and gate order (i, o, f, c).

    i = s(W_i x + R_i h + P_i * c_prev + b_i)    f = s(W_f x + R_f h + P_f * c_prev + b_f)
    c = f * c_prev + i * tanh(W_c x + R_c h + b_c)
    o = s(W_o x + R_o h + P_o * c + b_o)         h = o * tanh(c)

    The input projection W x + b is hoisted out of the time loop (`project`).
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.state_sizes = (hidden_size, hidden_size)  # h, c
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.peephole = nn.Parameter(torch.empty(3, hidden_size))  # rows: i, o, f (ONNX's P order)
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, self.weight_ih, self.bias)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        h, c = state
        p_i, p_o, p_f = self.peephole.unbind(0)
        i, o, f, z = torch.addmm(x_t, h, self.weight_hh.t()).chunk(4, dim=1)
        i = torch.sigmoid(torch.addcmul(i, p_i, c))
        f = torch.sigmoid(torch.addcmul(f, p_f, c))
        c = torch.addcmul(f * c, i, torch.tanh(z))
        h = torch.sigmoid(torch.addcmul(o, p_o, c)) * torch.tanh(c)
        return h, (h, c)
