"""The generic ONNX lowering of a cell encoder (zoo.plugin_api.cells.CellEncoder): one ONNX `Scan` per layer and direction.

For each cell, torch.onnx exports its one-step computation `step(x_t, state)`
(and its hoisted `project(x)`, when it has one) for any batch size; the step graph
becomes the body of a `Scan` over time whose scan inputs are the projected steps
and the step mask, and whose state variables are the cell's state tensors:

    new_state = Where(mask_t, step's new state, old state)    output_t = h_t * mask_t

so a review's state stops at its own length, exactly as the PyTorch loop does.
The backward direction reverses each review within its length with
`ReverseSequence(x, lengths)` before the Scan and reverses its outputs back after.
No plugin code is needed; export validation against PyTorch decides, as for
every export.
"""

from __future__ import annotations

import io
import warnings

import onnx
import torch
from onnx import TensorProto, helper

from zoo.errors import ExportError
from zoo.plugin_api.onnx import Graph, step_positions


class _Step(torch.nn.Module):
    def __init__(self, cell: torch.nn.Module):
        super().__init__()
        self.cell = cell

    def forward(self, x_t: torch.Tensor, *state: torch.Tensor):
        h, new_state = self.cell.step(x_t, tuple(state))
        return (h, *new_state)


class _Project(torch.nn.Module):
    def __init__(self, cell: torch.nn.Module):
        super().__init__()
        self.cell = cell

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cell.project(x)


def _torch_graph(module: torch.nn.Module, examples: tuple, inputs: list[str], outputs: list[str],
                 dynamic: dict[str, dict[int, str]], opset: int, what: str) -> onnx.GraphProto:
    """The ONNX graph torch.onnx makes of `module`, weights inlined as initializers."""
    buffer = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(module, examples, buffer, input_names=inputs, output_names=outputs, opset_version=opset,
                              dynamic_axes=dynamic, dynamo=False, do_constant_folding=True)
    except Exception as exc:
        raise ExportError(f"torch.onnx cannot export the cell's {what}: {type(exc).__name__}: {exc}. "
                          "Keep step() and project() to tensor operations without Python branches on values") from None
    return onnx.load_from_string(buffer.getvalue()).graph


def _prefixed(graph: onnx.GraphProto, prefix: str, keep: set[str] = frozenset()) -> onnx.GraphProto:
    """A copy of `graph` with every tensor and node name prefixed (except `keep`), so that copies can coexist."""
    copy = onnx.GraphProto()
    copy.CopyFrom(graph)
    rename = lambda name: name if not name or name in keep else prefix + name
    for node in copy.node:
        node.name = prefix + node.name
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
    for collection in (copy.input, copy.output, copy.value_info):
        for value in collection:
            value.name = rename(value.name)
    for tensor in copy.initializer:
        tensor.name = rename(tensor.name)
    return copy


def _graft(graph: Graph, sub: onnx.GraphProto, inputs: dict[str, str]) -> list[str]:
    """Add `sub`'s nodes and weights to `graph`, its inputs wired to `inputs`; return its output names."""
    sub = _prefixed(sub, graph.fresh("project") + "/")
    wire = {value.name: inputs[value.name.split("/", 1)[1]] for value in sub.input}
    for node in sub.node:
        node.input[:] = [wire.get(n, n) for n in node.input]
    graph.nodes.extend(sub.node)
    graph.initializers.extend(sub.initializer)
    return [value.name for value in sub.output]


def _scan_body(cell: torch.nn.Module, width: int, opset: int, prefix: str) -> onnx.GraphProto:
    """state..., x_t, mask_t -> new_state..., h_t * mask_t: the cell's step with the length mask applied."""
    count = len(cell.state_sizes)
    names = [f"s{i}" for i in range(count)]
    examples = (torch.zeros(2, width), *(torch.zeros(2, size) for size in cell.state_sizes))
    step = _torch_graph(_Step(cell), examples, ["x_t", *names], ["h", *[f"n{i}" for i in range(count)]],
                        {name: {0: "batch"} for name in ["x_t", *names, "h", *[f"n{i}" for i in range(count)]]},
                        opset, "step()")
    step = _prefixed(step, prefix, keep={"x_t", *names})
    nodes = list(step.node)
    outputs = []
    for i in range(count):
        kept = f"{prefix}kept{i}"
        nodes.append(helper.make_node("Where", ["mask_t", f"{prefix}n{i}", f"s{i}"], [kept], name=f"{prefix}where{i}"))
        outputs.append(kept)
    mask_float = f"{prefix}mask_float"
    nodes.append(helper.make_node("Cast", ["mask_t"], [mask_float], to=TensorProto.FLOAT, name=f"{prefix}cast"))
    nodes.append(helper.make_node("Mul", [f"{prefix}h", mask_float], [f"{prefix}out"], name=f"{prefix}mul"))
    floats = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
    inputs = [floats(n) for n in names] + [floats("x_t"), helper.make_tensor_value_info("mask_t", TensorProto.BOOL, None)]
    return helper.make_graph(nodes, f"{prefix}body", inputs, [floats(o) for o in outputs] + [floats(f"{prefix}out")],
                             list(step.initializer))


def _run_cell(graph: Graph, cell: torch.nn.Module, x: str, mask_tm: str, input_size: int) -> str:
    """[B, T, E] -> [B, T, hidden] outputs of one cell over `x`, state frozen where `mask_tm` [T, B, 1] is False."""
    inputs, width = x, input_size
    if callable(getattr(cell, "project", None)):
        example = torch.zeros(2, 3, input_size)
        with torch.no_grad():
            width = int(cell.project(example).shape[-1])
        sub = _torch_graph(_Project(cell), (example,), ["x"], ["y"], {"x": {0: "batch", 1: "steps"},
                                                                     "y": {0: "batch", 1: "steps"}}, graph.opset, "project()")
        (inputs,) = _graft(graph, sub, {"x": x})
    time_major = graph.op("Transpose", [inputs], perm=[1, 0, 2])
    batch = graph.op("Gather", [graph.op("Shape", [x]), graph.ints([0])], axis=0)
    zeros = [graph.op("ConstantOfShape", [graph.op("Concat", [batch, graph.ints([size])], axis=0)],
                      value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])) for size in cell.state_sizes]
    body = _scan_body(cell, width, graph.opset, graph.fresh("cell") + "/")
    outputs = graph.op("Scan", [*zeros, time_major, mask_tm], outputs=len(zeros) + 1, body=body, num_scan_inputs=2)
    return graph.op("Transpose", [outputs[-1]], perm=[1, 0, 2])


def lower_cell_encoder(encoder, graph: Graph, x: str, lengths: str) -> str:
    """zoo.plugin_api.cells.CellEncoder -> [B, T, D] outputs, zero at padded steps (the generic lowering of every cell)."""
    positions = step_positions(graph, x)  # [1, T]
    valid = graph.op("Less", [positions, graph.op("Unsqueeze", [lengths, graph.ints([1])])])  # [B, T]
    mask_tm = graph.op("Unsqueeze", [graph.op("Transpose", [valid], perm=[1, 0]), graph.ints([2])])  # [T, B, 1]
    h = x
    for cells, size in zip(encoder.layers, encoder.input_sizes):
        outputs = [_run_cell(graph, cells[0], h, mask_tm, size)]
        if encoder.bidirectional:
            reversed_x = graph.op("ReverseSequence", [h, lengths], batch_axis=0, time_axis=1)
            backward = _run_cell(graph, cells[1], reversed_x, mask_tm, size)
            outputs.append(graph.op("ReverseSequence", [backward, lengths], batch_axis=0, time_axis=1))
        h = graph.op("Concat", outputs, axis=2) if len(outputs) > 1 else outputs[0]
    return h
