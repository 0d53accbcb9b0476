"""`peephole`: an LSTM with peephole connections, in ONNX's formulation (LSTM with P)."""

from zoo.contract import Architecture
from zoo.plugins.hyperparameters import RecurrentHyperparameters


def build(hp: RecurrentHyperparameters, input_size: int):
    from zoo.plugins.encoders import PeepholeLSTMEncoder

    return PeepholeLSTMEncoder(input_size, hp.hidden_size, hp.num_layers, hp.dropout)


architecture = Architecture(
    name="peephole",
    summary="LSTM with peephole connections (gates see the cell state)",
    hyperparameters=RecurrentHyperparameters,
    build=build,
)
