"""What the built-ins on PyTorch's fused kernels share: an encoder on nn.LSTM or nn.GRU, masked at padded steps,
and lowerings onto ONNX's fused LSTM and GRU ops. Light to import: torch and onnx load inside the functions."""

from typing import Any, Callable


def causal_build(kind: str) -> Callable[[Any, int], Any]:
    """build(hp, input_size) of a forward stack of nn.LSTM or nn.GRU (`kind`) layers."""

    def build(hp: Any, input_size: int):
        from torch import nn

        from zoo.plugins.encoders import CausalRNNEncoder

        dropout = hp.dropout if hp.num_layers > 1 else 0.0
        return CausalRNNEncoder(getattr(nn, kind)(input_size, hp.hidden_size, hp.num_layers, batch_first=True,
                                                  dropout=dropout))

    return build


def fused_lowering(kind: str) -> Callable[..., str]:
    """lower_onnx(encoder, graph, x, lengths) onto ONNX's fused ops: "LSTM", "GRU" or "BiLSTM"."""

    def lower_onnx(encoder, graph, x: str, lengths: str) -> str:
        from zoo.plugin_api import onnx

        if kind == "BiLSTM":
            return onnx.lower_bilstm_stack(graph, encoder, x, lengths)
        lower = onnx.lower_lstm_stack if kind == "LSTM" else onnx.lower_gru_stack
        return lower(graph, encoder.rnn, x, lengths)

    return lower_onnx
