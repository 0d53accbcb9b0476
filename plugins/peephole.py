"""`peephole`: an LSTM with peephole connections, in ONNX's formulation (LSTM with P)."""

from zoo.contract import Architecture
from zoo.plugins.hyperparameters import RecurrentHyperparameters


def build(hp: RecurrentHyperparameters, input_size: int):
    from zoo.plugins.encoders import PeepholeLSTMEncoder

    return PeepholeLSTMEncoder(input_size, hp.hidden_size, hp.num_layers, hp.dropout)


def lower_onnx(encoder, graph, x: str, lengths: str) -> str:
    from zoo.exporters.lowering import lower_peephole_stack

    return lower_peephole_stack(graph, encoder, x, lengths)


architecture = Architecture(
    name="peephole",
    summary="LSTM with peephole connections (gates see the cell state)",
    hyperparameters=RecurrentHyperparameters,
    build=build,
    lower_onnx=lower_onnx,
)
