"""The ids-in ONNX graph of a classifier: `input_ids` [batch, sequence] and `lengths` [batch] in, `logits` out
([batch] for two classes, the second class's; [batch, K] for K > 2).

Architectures with a native lowering (`Architecture.lower_onnx`) map onto ONNX's
fused recurrent ops, with the embedding, pooling and head written here; cell
encoders go through the generic Scan lowering (zoo.exporters.onnx.scan); the
others go through torch.onnx (the TorchScript-based exporter) as a whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from zoo.errors import ExportError
from zoo.exporters.onnx.scan import lower_cell_encoder
from zoo.plugin_api.onnx import Graph, float_output, int64_input, step_positions

DEFAULT_OPSET = 17


def lower_pooling(graph: Graph, outputs: str, lengths: str, kinds: list[str], bidirectional: bool) -> str:
    """ONNX of zoo.models.classifier.Pooling: max / mean / last over each review's valid steps, concatenated."""
    positions = step_positions(graph, outputs)
    column = graph.op("Unsqueeze", [lengths, graph.ints([1])])  # [B, 1]
    pooled = []
    for kind in kinds:
        if kind == "max":
            valid = graph.op("Unsqueeze", [graph.op("Less", [positions, column]), graph.ints([2])])
            masked = graph.op("Where", [valid, outputs, graph.const(-np.inf, "neg_inf")])
            pooled.append(graph.reduce("ReduceMax", masked, 1))
        elif kind == "mean":
            total = graph.reduce("ReduceSum", outputs, 1)
            pooled.append(graph.op("Div", [total, graph.op("Cast", [column], to=1)]))
        else:
            last = graph.op("Sub", [column, graph.ints(1)])
            pick = graph.op("Cast", [graph.op("Unsqueeze", [graph.op("Equal", [positions, last]), graph.ints([2])])], to=1)
            at_end = graph.reduce("ReduceSum", graph.op("Mul", [outputs, pick]), 1)
            if bidirectional:  # the backward half ends at step 0
                first = graph.op("Squeeze", [graph.op("Slice", [outputs, graph.ints([0]), graph.ints([1]), graph.ints([1])]),
                                             graph.ints([1])])
                half = graph.op("Div", [graph.op("Gather", [graph.op("Shape", [outputs]), graph.ints(2)], axis=0), graph.ints(2)])
                half = graph.op("Unsqueeze", [half, graph.ints([0])])
                big = graph.ints([np.iinfo(np.int64).max])
                forward = graph.op("Slice", [at_end, graph.ints([0]), half, graph.ints([1])])
                backward = graph.op("Slice", [first, half, big, graph.ints([1])])
                at_end = graph.op("Concat", [forward, backward], axis=1)
            pooled.append(at_end)
    return pooled[0] if len(pooled) == 1 else graph.op("Concat", pooled, axis=1)


def lower_head(graph: Graph, x: str, head: torch.nn.Sequential) -> str:
    for layer in head:
        if isinstance(layer, torch.nn.Linear):
            x = graph.op("MatMul", [x, graph.const(layer.weight.detach().numpy().T, "head_w")])
            if layer.bias is not None:
                x = graph.op("Add", [x, graph.const(layer.bias.detach().numpy(), "head_b")])
        elif isinstance(layer, torch.nn.ReLU):
            x = graph.op("Relu", [x])
        elif not isinstance(layer, torch.nn.Dropout):  # dropout is the identity at inference
            raise ExportError(f"the head layer {layer} has no ONNX lowering")
    return x


def native_graph(model, lower, opset: int, metadata: dict[str, str]) -> onnx.ModelProto:
    graph = Graph(opset)
    embedded = graph.op("Gather", [graph.const(model.embedding.weight.detach().numpy(), "embedding"), "input_ids"], axis=0)
    outputs = lower(model.encoder, graph, embedded, "lengths")
    pooled = lower_pooling(graph, outputs, "lengths", model.pooling.kinds, model.pooling.bidirectional)
    logits = lower_head(graph, pooled, model.head)
    if model.num_classes == 2:  # one logit, the second class's: [batch]
        graph.op("Squeeze", [logits, graph.ints([1])], name="logits")
        shape = ["batch"]
    else:
        graph.op("Identity", [logits], name="logits")
        shape = ["batch", model.num_classes]
    return graph.model([int64_input("input_ids", ["batch", "sequence"]), int64_input("lengths", ["batch"])],
                       [float_output("logits", shape)], metadata)


def encoder_lowering(architecture, encoder):
    """How an encoder goes to ONNX: the plugin's native lowering, the generic Scan lowering of a cell encoder,
    or None (torch.onnx of the whole classifier)."""
    from zoo.plugin_api.cells import CellEncoder

    if architecture.lower_onnx is not None:
        return architecture.lower_onnx
    return lower_cell_encoder if isinstance(encoder, CellEncoder) else None


def classifier_graph(model, lower, opset: int, metadata: dict[str, str], scratch: Path) -> onnx.ModelProto:
    """The ids-in ONNX of `model`: native when `lower` is given, else torch.onnx (which writes `scratch`)."""
    kind = "scan" if lower is lower_cell_encoder else "native"
    metadata = metadata | {"lowering": kind if lower else "torch.onnx", "opset": str(opset)}
    return native_graph(model, lower, opset, metadata) if lower else torch_onnx_graph(model, opset, metadata, scratch)


def check_and_save(exported: onnx.ModelProto, path: Path) -> None:
    problem = checker_problem(exported)
    if problem:
        raise ExportError(f"the exported graph fails onnx.checker: {problem}")
    onnx.save(exported, str(path))


def build_onnx(model, lower, opset: int, metadata: dict[str, str], path: Path) -> dict[str, str]:
    """Write `model` as checked ids-in ONNX to `path`; return the metadata it carries."""
    exported = classifier_graph(model, lower, opset, metadata, path)
    check_and_save(exported, path)
    return metadata_of(exported)


def torch_onnx_graph(model, opset: int, metadata: dict[str, str], path: Path) -> onnx.ModelProto:
    """The generic path for plugins without a lowering: torch.onnx.export of the whole classifier."""
    ids = torch.randint(1, model.embedding.num_embeddings, (2, 12))
    lengths = torch.tensor([12, 7])
    try:
        torch.onnx.export(model, (ids, lengths), str(path), input_names=["input_ids", "lengths"],
                          output_names=["logits"], opset_version=opset, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "lengths": {0: "batch"},
                                        "logits": {0: "batch"}})
    except Exception as exc:
        raise ExportError(f"torch.onnx cannot export this architecture: {type(exc).__name__}: {exc}. "
                          "Give the plugin a native lowering (Architecture.lower_onnx) or use ops torch.onnx supports")
    exported = onnx.load(str(path))
    onnx.helper.set_model_props(exported, metadata)
    return exported


def checker_problem(exported: onnx.ModelProto) -> str | None:
    try:
        onnx.checker.check_model(exported, full_check=True)
    except Exception as exc:
        return str(exc)
    return None


def metadata_of(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}
