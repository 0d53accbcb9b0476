"""`classic`: a unidirectional LSTM on PyTorch's fused nn.LSTM."""

from zoo.plugin_api import Architecture
from zoo.plugins.fused import causal_build, fused_lowering
from zoo.plugins.hyperparameters import RecurrentHyperparameters

build = causal_build("LSTM")
architecture = Architecture(name="classic", summary="LSTM, one direction (fused nn.LSTM)",
                            hyperparameters=RecurrentHyperparameters, build=build, lower_onnx=fused_lowering("LSTM"))
