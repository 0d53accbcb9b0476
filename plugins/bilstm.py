"""`bilstm`: a bidirectional LSTM whose backward pass starts at each review's last token."""

from zoo.plugin_api import Architecture
from zoo.plugins.fused import fused_lowering
from zoo.plugins.hyperparameters import RecurrentHyperparameters


def build(hp: RecurrentHyperparameters, input_size: int):
    from zoo.plugins.encoders import BiLSTMEncoder

    return BiLSTMEncoder(input_size, hp.hidden_size, hp.num_layers, hp.dropout)


architecture = Architecture(name="bilstm", summary="bidirectional LSTM, padding-exact in both directions (fused nn.LSTM)",
                            hyperparameters=RecurrentHyperparameters, build=build, lower_onnx=fused_lowering("BiLSTM"))
