"""int8 exports: onnxruntime's dynamic quantization of the classifier graph."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
from onnx import helper

from zoo.exporters.onnx.classifier import metadata_of


def quantize_int8(exported: onnx.ModelProto, scratch: Path) -> onnx.ModelProto:
    """Dynamic int8 quantization (onnxruntime.quantization): int8 weights for LSTM, MatMul and Gather.

    GRU has no quantized kernel in onnxruntime and stays fp32; activations are
    quantized at run time, per tensor.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, target = scratch.with_name(scratch.stem + ".fp32.tmp"), scratch.with_name(scratch.stem + ".int8.tmp")
    try:
        onnx.save(exported, str(source))
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # silence its generic advice to pre-process the model first
        try:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8, op_types_to_quantize=["LSTM", "MatMul", "Gather"])
        finally:
            root.setLevel(level)
        quantized = onnx.load(str(target))
    finally:
        source.unlink(missing_ok=True)
        target.unlink(missing_ok=True)
    helper.set_model_props(quantized, metadata_of(exported) | {"quantization": "int8-dynamic"})
    return quantized
