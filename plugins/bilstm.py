"""`bilstm`: a bidirectional LSTM whose backward pass starts at each review's last token."""

from zoo.contract import Architecture
from zoo.plugins.hyperparameters import RecurrentHyperparameters


def build(hp: RecurrentHyperparameters, input_size: int):
    from zoo.plugins.encoders import BiLSTMEncoder

    return BiLSTMEncoder(input_size, hp.hidden_size, hp.num_layers, hp.dropout)


def lower_onnx(encoder, graph, x: str, lengths: str) -> str:
    from zoo.exporters.lowering import lower_bilstm_stack

    return lower_bilstm_stack(graph, encoder, x, lengths)


architecture = Architecture(
    name="bilstm",
    summary="bidirectional LSTM, padding-exact in both directions (fused nn.LSTM)",
    hyperparameters=RecurrentHyperparameters,
    build=build,
    lower_onnx=lower_onnx,
)
