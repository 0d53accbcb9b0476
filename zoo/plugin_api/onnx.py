"""ONNX for architecture lowerings (`Architecture.lower_onnx(encoder, graph, x, lengths) -> name`): the graph
builder a lowering adds nodes to, and lowerings onto ONNX's fused LSTM and GRU ops, which the built-ins use
(zoo.exporters.onnx builds the rest of the classifier's graph with the same builder).

Every lowering maps `x` [B, T, E] and `lengths` [B] to `[B, T, D]` outputs,
zero at padded steps, feeding `sequence_lens` to the recurrent op so that
onnxruntime runs its fused kernels and each review stops at its own length
(the reverse direction of a bidirectional LSTM starts at each review's last
token, as in the PyTorch encoder).

Gate orders: PyTorch LSTM (i, f, g, o) -> ONNX (i, o, f, c); PyTorch GRU
(r, z, n) -> ONNX (z, r, h) with linear_before_reset=1, which is PyTorch's GRU.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Graph:
    """Accumulates nodes and initializers; `op` returns the new output name(s)."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._ids = itertools.count()

    def fresh(self, hint: str) -> str:
        return f"{hint}_{next(self._ids)}"

    def const(self, value, hint: str = "const", dtype=np.float32) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def ints(self, values, hint: str = "ints") -> str:
        return self.const(values, hint, np.int64)

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, name: str | None = None, **attrs) -> str | list[str]:
        out = [name] if name and outputs == 1 else [self.fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, out, name=self.fresh(op_type), **attrs))
        return out[0] if outputs == 1 else out

    def reduce(self, op_type: str, x: str, axis: int) -> str:
        """ReduceMax / ReduceSum over one axis, keepdims=0, in the form the opset wants."""
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.ints([axis])], keepdims=0)
        return self.op(op_type, [x], axes=[axis], keepdims=0)

    def model(self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
              metadata: dict[str, str]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "zoo_classifier", inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="recurrent-model-zoo")
        model.ir_version = min(model.ir_version, 10)  # what onnxruntime releases of the last years accept
        helper.set_model_props(model, metadata)
        return model


def int64_input(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.INT64, shape)


def float_output(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)



LSTM_TORCH_TO_ONNX = (0, 3, 1, 2)  # i, f, g, o -> i, o, f, c
GRU_TORCH_TO_ONNX = (1, 0, 2)  # r, z, n -> z, r, h


def _array(tensor) -> np.ndarray:
    return tensor.detach().cpu().float().numpy()


def _reorder(weights: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    return np.concatenate([np.split(weights, len(order))[i] for i in order])


def _time_major(graph: Graph, x: str) -> str:
    return graph.op("Transpose", [x], perm=[1, 0, 2])


def _batch_major(graph: Graph, y: str) -> str:
    """ONNX's Y [T, directions, B, H] -> [B, T, directions * H]."""
    y = graph.op("Transpose", [y], perm=[2, 0, 1, 3])
    return graph.op("Reshape", [y, graph.ints([0, 0, -1])])


def _next_input(graph: Graph, y: str) -> str:
    """Y [T, directions, B, H] -> the next layer's X [T, B, directions * H]."""
    y = graph.op("Transpose", [y], perm=[0, 2, 1, 3])
    return graph.op("Reshape", [y, graph.ints([0, 0, -1])])


def step_positions(graph: Graph, outputs: str) -> str:
    """[1, T] int64: 0 .. T-1 for the time axis of [B, T, D] `outputs`."""
    steps = graph.op("Gather", [graph.op("Shape", [outputs]), graph.ints(1)], axis=0)
    return graph.op("Unsqueeze", [graph.op("Range", [graph.ints(0), steps, graph.ints(1)]), graph.ints([0])])


def mask_padding(graph: Graph, outputs: str, lengths: str) -> str:
    """Zero [B, T, D] outputs at steps t >= lengths[b]."""
    valid = graph.op("Less", [step_positions(graph, outputs), graph.op("Unsqueeze", [lengths, graph.ints([1])])])
    mask = graph.op("Cast", [graph.op("Unsqueeze", [valid, graph.ints([2])])], to=1)
    return graph.op("Mul", [outputs, mask])


def _recurrent_stack(graph: Graph, op_type: str, layers: list[dict], x: str, lengths: str, **attrs) -> str:
    """Stack ONNX LSTM/GRU nodes; each layer is {"W", "R", "B", optional "P"} with a directions axis."""
    seq_lens = graph.op("Cast", [lengths], to=6)  # int32
    h = _time_major(graph, x)
    y = None
    for depth, layer in enumerate(layers):
        hidden = layer["R"].shape[-1]
        inputs = [h, graph.const(layer["W"], f"W{depth}"), graph.const(layer["R"], f"R{depth}"),
                  graph.const(layer["B"], f"B{depth}"), seq_lens]
        if "P" in layer:
            inputs += ["", "", graph.const(layer["P"], f"P{depth}")]
        y = graph.op(op_type, inputs, hidden_size=hidden, **attrs)
        if depth + 1 < len(layers):
            h = _next_input(graph, y)
    return mask_padding(graph, _batch_major(graph, y), lengths)


def _lstm_weights(lstm, layer: int = 0, suffix: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    get = lambda kind: _array(getattr(lstm, f"{kind}_l{layer}{suffix}"))
    W = _reorder(get("weight_ih"), LSTM_TORCH_TO_ONNX)
    R = _reorder(get("weight_hh"), LSTM_TORCH_TO_ONNX)
    B = np.concatenate([_reorder(get("bias_ih"), LSTM_TORCH_TO_ONNX), _reorder(get("bias_hh"), LSTM_TORCH_TO_ONNX)])
    return W, R, B


def lower_lstm_stack(graph: Graph, lstm, x: str, lengths: str) -> str:
    """A unidirectional multi-layer torch.nn.LSTM."""
    layers = []
    for depth in range(lstm.num_layers):
        W, R, B = _lstm_weights(lstm, depth)
        layers.append({"W": W[None], "R": R[None], "B": B[None]})
    return _recurrent_stack(graph, "LSTM", layers, x, lengths, direction="forward")


def lower_bilstm_stack(graph: Graph, encoder, x: str, lengths: str) -> str:
    """zoo's BiLSTMEncoder: per layer one forward and one backward single-layer nn.LSTM."""
    layers = []
    for fw, bw in zip(encoder.forward_layers, encoder.backward_layers):
        (Wf, Rf, Bf), (Wb, Rb, Bb) = _lstm_weights(fw), _lstm_weights(bw)
        layers.append({"W": np.stack([Wf, Wb]), "R": np.stack([Rf, Rb]), "B": np.stack([Bf, Bb])})
    return _recurrent_stack(graph, "LSTM", layers, x, lengths, direction="bidirectional")


def lower_peephole_stack(graph: Graph, encoder, x: str, lengths: str) -> str:
    """The peephole cells of a zoo.plugin_api.cells.CellEncoder: already in ONNX's gate order, one bias, peepholes (i, o, f).

    A bidirectional encoder becomes bidirectional LSTM nodes: ONNX's reverse direction starts at each review's
    own last step (sequence_lens), as the CellEncoder's backward cell does.
    """
    layers = []
    for cells in encoder.layers:
        stacked = {"W": [], "R": [], "B": [], "P": []}
        for cell in cells:
            bias = _array(cell.bias)
            stacked["W"].append(_array(cell.weight_ih))
            stacked["R"].append(_array(cell.weight_hh))
            stacked["B"].append(np.concatenate([bias, np.zeros_like(bias)]))
            stacked["P"].append(_array(cell.peephole).reshape(-1))
        layers.append({key: np.stack(values) for key, values in stacked.items()})
    direction = "bidirectional" if encoder.bidirectional else "forward"
    return _recurrent_stack(graph, "LSTM", layers, x, lengths, direction=direction)


def lower_gru_stack(graph: Graph, gru, x: str, lengths: str) -> str:
    """A unidirectional multi-layer torch.nn.GRU (linear_before_reset=1 is PyTorch's formulation)."""
    layers = []
    for depth in range(gru.num_layers):
        get = lambda kind: _array(getattr(gru, f"{kind}_l{depth}"))
        W, R = _reorder(get("weight_ih"), GRU_TORCH_TO_ONNX), _reorder(get("weight_hh"), GRU_TORCH_TO_ONNX)
        B = np.concatenate([_reorder(get("bias_ih"), GRU_TORCH_TO_ONNX), _reorder(get("bias_hh"), GRU_TORCH_TO_ONNX)])
        layers.append({"W": W[None], "R": R[None], "B": B[None]})
    return _recurrent_stack(graph, "GRU", layers, x, lengths, direction="forward", linear_before_reset=1)
