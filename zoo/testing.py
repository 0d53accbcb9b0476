"""Contract checks an architecture plugin can run against itself, and the zoo runs against its built-ins.

    from zoo.testing import check_architecture
    from my_plugin import architecture

    def test_contract():
        check_architecture(architecture)          # shapes, zero padding, padding-exactness, gradients, ONNX parity
        check_architecture(architecture, architecture.hyperparameters(hidden_size=16, num_layers=2))

Each check raises AssertionError with what broke. They build a small
classifier (the zoo's embedding, pooling and head around the plugin's encoder),
so they take seconds on a CPU. The suite reaches into the whole zoo (models,
export, runtime): it exercises a plugin the way the zoo will use it.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.config.sections import ClassifierConfig, RunConfig
from zoo.data.batching import pad_rows
from zoo.models.classifier import Classifier
from zoo.plugin_api.contract import Architecture

VOCAB = 50


def small_classifier(architecture: Architecture, hyperparameters: Any = None, *, pooling: str = "max+mean+last",
                     embedding_dim: int = 6, seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    hp = hyperparameters_of(architecture, hyperparameters)
    config = RunConfig("test", architecture.name, hp, ClassifierConfig(embedding_dim=embedding_dim, pooling=pooling, head_hidden=5))
    encoder = architecture.build(hp, embedding_dim)
    assert isinstance(encoder, torch.nn.Module), "build() must return a torch.nn.Module"
    assert isinstance(getattr(encoder, "output_size", None), int), "the encoder needs an int `output_size`"
    return Classifier(encoder, VOCAB, config).eval()


def hyperparameters_of(architecture: Architecture, given: Any = None) -> Any:
    """The architecture's own hyperparameters for `given`: its defaults for None, and for an instance of a cell
    plugin's own dataclass the architecture's type (which adds num_layers, dropout and bidirectional)."""
    if given is None:
        return architecture.default_hyperparameters()
    kind = architecture.hyperparameters
    if not isinstance(given, kind) and dataclasses.is_dataclass(given) and issubclass(kind, type(given)):
        return kind(**dataclasses.asdict(given))
    return given


def random_reviews(lengths: list[int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, VOCAB, size=n) for n in lengths]


def padded(reviews: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    ids, lengths = pad_rows(reviews)
    return torch.from_numpy(ids), torch.from_numpy(lengths)


def assert_shapes_and_zero_padding(architecture: Architecture, hyperparameters: Any = None) -> None:
    model = small_classifier(architecture, hyperparameters)
    ids, lengths = padded(random_reviews([3, 10, 7]))
    with torch.no_grad():
        outputs = model.encoder(model.embedding(ids), lengths)
        logits = model(ids, lengths)
    assert tuple(outputs.shape) == (3, 10, model.encoder.output_size), f"encoder outputs have shape {tuple(outputs.shape)}"
    assert tuple(logits.shape) == (3,), f"logits have shape {tuple(logits.shape)}"
    for row, n in enumerate(lengths.tolist()):
        assert outputs[row, n:].abs().sum().item() == 0.0, f"row {row}: outputs are not zero past its length {n}"


def assert_padding_exact(architecture: Architecture, hyperparameters: Any = None, atol: float = 1e-5) -> None:
    """A review's logit alone equals its logit batched with a 3x longer review, in either row."""
    model = small_classifier(architecture, hyperparameters)
    review, longer = random_reviews([13, 39], seed=1)
    with torch.no_grad():
        alone = model(*padded([review]))[0]
        first = model(*padded([review, longer]))[0]
        second = model(*padded([longer, review]))[1]
    for name, value in (("first", first), ("second", second)):
        assert abs(float(alone - value)) <= atol, (
            f"not padding-exact: logit {float(alone):.6f} alone, {float(value):.6f} as the {name} row beside a longer review")


def assert_gradients_reach_every_parameter(architecture: Architecture, hyperparameters: Any = None) -> None:
    model = small_classifier(architecture, hyperparameters).train()
    ids, lengths = padded(random_reviews([5, 12, 9, 1], seed=2))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(ids, lengths), torch.tensor([1.0, 0.0, 1.0, 0.0]))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, f"no gradient reaches {name}"


def assert_onnx_parity(architecture: Architecture, hyperparameters: Any = None, atol: float = 1e-4) -> dict:
    """Export through the path the zoo would take (native lowering or torch.onnx) and compare with onnxruntime."""
    from zoo.exporters.onnx.classifier import DEFAULT_OPSET, build_onnx, encoder_lowering
    from zoo.exporters.onnx.validation import validate
    from zoo.inference.runtime import open_session

    model = small_classifier(architecture, hyperparameters)
    rows = [r.astype(np.int64) for r in random_reviews(list(range(1, 81)) + [150, 300, 600], seed=3)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        build_onnx(model, encoder_lowering(architecture, model.encoder), DEFAULT_OPSET, {}, path)
        report = validate(model, open_session(path), rows, atol)
    assert report["passed"], f"ONNX differs from PyTorch by {report['max_abs_diff']:.3g} > {atol}: {report['worst']}"
    return report


def check_architecture(architecture: Architecture, hyperparameters: Any = None, *, onnx: bool = True) -> None:
    """Every contract check; `onnx=False` skips the export parity check.

    A cell architecture (zoo.plugin_api.cell_architecture) is checked in both directions: with the given
    hyperparameters and with `bidirectional` flipped, its ONNX export going through the generic Scan lowering
    (or its native one). Give hyperparameters as `architecture.hyperparameters(...)` (for a cell, your
    dataclass's fields plus num_layers, dropout, bidirectional); an instance of a cell plugin's own dataclass
    is converted to it.
    """
    hp = hyperparameters_of(architecture, hyperparameters)
    variants = [hp]
    if dataclasses.is_dataclass(hp) and "bidirectional" in {f.name for f in dataclasses.fields(hp)}:
        variants.append(dataclasses.replace(hp, bidirectional=not hp.bidirectional))
    for variant in variants:
        assert_shapes_and_zero_padding(architecture, variant)
        assert_padding_exact(architecture, variant)
        assert_gradients_reach_every_parameter(architecture, variant)
        if onnx:
            assert_onnx_parity(architecture, variant)
