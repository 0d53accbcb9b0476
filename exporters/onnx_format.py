"""The built-in `onnx` export format (light module: the work is in zoo.exporters.onnx)."""

from zoo.plugin_api import Exporter


def export(run_dir, output=None, **options) -> dict:
    from zoo.exporters.onnx.export import export_onnx

    return export_onnx(run_dir, output, **options)


exporter = Exporter(
    name="onnx",
    summary="ONNX for onnxruntime: native LSTM/GRU ops where a lowering exists, validated against PyTorch",
    export=export,
)
