"""The old import path of the built-in lowerings, kept so that plugin lowerings written against
zoo.exporters.lowering keep working (new code: zoo.plugin_api.onnx)."""

from zoo.plugin_api.onnx import *  # noqa: F401,F403
