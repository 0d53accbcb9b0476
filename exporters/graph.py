"""A small builder for ONNX graphs: named constants, nodes with fresh output names, a final model."""

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
