"""The recurrent model zoo: recurrent text classifiers as plugins, one trainer, ONNX export.

Importing `zoo` is cheap: torch, onnx and datasets are imported only by the
functions that need them.
"""

__version__ = "0.1.0"
