"""`gru`: a unidirectional GRU with PyTorch's semantics, on the fused nn.GRU."""

from zoo.plugin_api import Architecture
from zoo.plugins.fused import causal_build, fused_lowering
from zoo.plugins.hyperparameters import RecurrentHyperparameters

architecture = Architecture(name="gru", summary="GRU, one direction, PyTorch semantics (fused nn.GRU)",
                            hyperparameters=RecurrentHyperparameters, build=causal_build("GRU"),
                            lower_onnx=fused_lowering("GRU"))
