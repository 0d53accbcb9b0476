"""Using trained models: logits from PyTorch (zoo.inference.logits), metrics, `zoo evaluate`, `zoo predict`, and
exported models through onnxruntime without torch (zoo.inference.runtime)."""
