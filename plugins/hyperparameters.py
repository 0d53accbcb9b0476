"""Hyperparameters shared by the built-in recurrent architectures (no torch import here)."""

from dataclasses import dataclass


@dataclass
class RecurrentHyperparameters:
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.0  # between stacked layers; unused with one layer

    def __post_init__(self) -> None:
        if self.hidden_size < 1:
            raise ValueError("hidden_size must be >= 1")
        if self.num_layers < 1:
            raise ValueError("num_layers must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
