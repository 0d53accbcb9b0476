"""The torch module: x -> Linear -> [LayerNorm -> GRU -> dropout -> + residual] * layers, masked."""

import torch
from torch import nn


class ResidualGRU(nn.Module):
    bidirectional = False  # one direction: "last" pooling reads the final valid step

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.project = nn.Linear(input_size, hidden_size)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_size) for _ in range(num_layers))
        self.grus = nn.ModuleList(nn.GRU(hidden_size, hidden_size, batch_first=True) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.output_size = hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # Every step depends only on earlier steps (GRUs run forward), so padding after a
        # review cannot reach its outputs: zeroing the padded steps makes it padding-exact.
        h = self.project(x)
        for norm, gru in zip(self.norms, self.grus):
            h = h + self.dropout(gru(norm(h))[0])
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
        return h * valid.unsqueeze(-1).to(h.dtype)
