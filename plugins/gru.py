"""`gru`: a unidirectional GRU with PyTorch's semantics, on the fused nn.GRU."""

from zoo.contract import Architecture
from zoo.plugins.hyperparameters import RecurrentHyperparameters


def build(hp: RecurrentHyperparameters, input_size: int):
    from torch import nn

    from zoo.plugins.encoders import CausalRNNEncoder

    dropout = hp.dropout if hp.num_layers > 1 else 0.0
    return CausalRNNEncoder(nn.GRU(input_size, hp.hidden_size, hp.num_layers, batch_first=True, dropout=dropout))


def lower_onnx(encoder, graph, x: str, lengths: str) -> str:
    from zoo.exporters.lowering import lower_gru_stack

    return lower_gru_stack(graph, encoder.rnn, x, lengths)


architecture = Architecture(
    name="gru",
    summary="GRU, one direction, PyTorch semantics (fused nn.GRU)",
    hyperparameters=RecurrentHyperparameters,
    build=build,
    lower_onnx=lower_onnx,
)
