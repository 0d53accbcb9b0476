"""The ONNX export format: the classifier graph (native lowerings, the generic Scan of cells, or torch.onnx), the
text front end, int8 quantization, and validation against PyTorch (zoo.exporters.onnx.export puts them together)."""
