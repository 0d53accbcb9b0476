"""The old import path of the ONNX graph builder, kept so that plugin lowerings written against
zoo.exporters.graph keep working (new code: zoo.plugin_api.onnx)."""

from zoo.plugin_api.onnx import *  # noqa: F401,F403
