"""The plugin contract: what an architecture plugin hands the zoo.

Two ways to write one. The easy one: a recurrent *cell* (one step), turned into an
Architecture by `cell_architecture`; the zoo supplies the time loop, padding,
stacking, both directions and the ONNX export (see zoo.plugin_api.cells). The advanced one: an
`Architecture` whose `build` returns a whole encoder, for fused kernels
(nn.LSTM, nn.GRU), described below.

A plugin module exposes an `Architecture` object through the entry point group
`zoo.architectures`. The module must stay light to import (no torch at module
level): the zoo imports it to list and describe it, and checks `api_version`
before calling `build`, which is where the heavy imports belong.

The encoder that `build(hyperparameters, input_size)` returns is a
`torch.nn.Module` with:

- `forward(x, lengths) -> outputs`: `x` is `[B, T, input_size]` float, `lengths`
  is `[B]` int64 (each >= 1); `outputs` is `[B, T, output_size]`, zero at padded
  steps (t >= lengths[b]);
- padding-exactness: a review's outputs do not change when it is batched with
  longer reviews;
- `output_size: int`, the feature size D of the outputs;
- optionally `bidirectional: bool`: when true, the second half of the features
  runs backwards in time, and "last" pooling reads it at step 0.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

PLUGIN_API_VERSION = 1


@dataclass(frozen=True)
class Architecture:
    """One recurrent architecture: a name, its hyperparameters and how to build its encoder."""

    name: str
    summary: str
    hyperparameters: type
    build: Callable[[Any, int], Any]
    api_version: int = PLUGIN_API_VERSION
    # Optional native ONNX lowering: lower_onnx(encoder, graph, x, lengths) -> name
    # of the [B, T, D] output (see zoo.exporters.onnx). None: generic torch.onnx path.
    lower_onnx: Callable[..., str] | None = None

    def default_hyperparameters(self) -> Any:
        return self.hyperparameters()


@dataclass(frozen=True)
class Exporter:
    """One export format, offered through the entry point group `zoo.exporters`.

    `export(run_dir, output, **options) -> report` writes the exported model,
    validates it, and returns a JSON-able report with at least `path` and
    `passed`; it raises zoo.errors.ExportError when the export fails or misses
    its tolerance. Options the CLI passes: opset, atol, data, threads.
    """

    name: str
    summary: str
    export: Callable[..., dict]
    api_version: int = PLUGIN_API_VERSION


@dataclass
class CellHyperparameters:
    """The hyperparameters every cell architecture gets besides its own (zoo.plugin_api.cells.CellEncoder)."""

    num_layers: int = 1
    dropout: float = 0.0  # between stacked layers
    bidirectional: bool = False  # a second cell reads each review backwards within its length

    def check_cell_hyperparameters(self) -> None:
        if self.num_layers < 1:
            raise ValueError("num_layers must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")


def cell_architecture(name: str, summary: str, hyperparameters: type, build_cell: Callable[[Any, int], Any], *,
                      lower_onnx: Callable[..., str] | None = None, api_version: int = PLUGIN_API_VERSION) -> Architecture:
    """An Architecture from a recurrent cell.

    `build_cell(hyperparameters, input_size)` returns a cell (zoo.plugin_api.cells: `state_sizes`, `hidden_size`,
    `step(x_t, state)`, optional `project(x)`); it is called once per layer and direction. The
    architecture's hyperparameters are the plugin's dataclass plus CellHyperparameters (num_layers,
    dropout, bidirectional; the plugin's own fields of those names win). Its ONNX export is the zoo's
    generic Scan lowering unless `lower_onnx` gives a native one.
    """
    if not (isinstance(hyperparameters, type) and dataclasses.is_dataclass(hyperparameters)):
        raise ContractError("hyperparameters must be a dataclass type")
    own_check = getattr(hyperparameters, "__post_init__", None)

    def __post_init__(self) -> None:
        CellHyperparameters.check_cell_hyperparameters(self)
        if own_check is not None:
            own_check(self)

    combined = dataclasses.make_dataclass(hyperparameters.__name__, [], bases=(hyperparameters, CellHyperparameters),
                                          namespace={"__post_init__": __post_init__})
    combined.__module__ = hyperparameters.__module__

    def build(hp: Any, input_size: int) -> Any:
        from zoo.plugin_api.cells import CellEncoder

        return CellEncoder(lambda size: build_cell(hp, size), input_size, hp.num_layers, hp.dropout,
                           hp.bidirectional, where=f"cell architecture {name!r}")

    return Architecture(name=name, summary=summary, hyperparameters=combined, build=build, api_version=api_version,
                        lower_onnx=lower_onnx)


class ContractError(Exception):
    """A plugin object that does not satisfy the contract."""


def checked_architecture(obj: Any, entry_name: str) -> Architecture:
    """`obj` (an entry point's object) as an Architecture, or a ContractError saying what is missing."""
    if isinstance(obj, type) and not isinstance(obj, Architecture):
        try:
            obj = obj()
        except Exception as exc:  # a class that cannot be instantiated without arguments
            raise ContractError(f"entry point is a class that cannot be instantiated: {exc}") from exc
    missing = [a for a in ("name", "summary", "hyperparameters", "build") if not hasattr(obj, a)]
    if missing:
        raise ContractError(f"object {obj!r} lacks {', '.join(missing)}; expected a zoo.plugin_api.Architecture")
    if not isinstance(obj.api_version if hasattr(obj, "api_version") else None, int):
        raise ContractError("api_version must be an int (zoo.plugin_api.PLUGIN_API_VERSION)")
    if obj.name != entry_name:
        raise ContractError(f"entry point name {entry_name!r} differs from the architecture's name {obj.name!r}")
    if not (isinstance(obj.hyperparameters, type) and dataclasses.is_dataclass(obj.hyperparameters)):
        raise ContractError("hyperparameters must be a dataclass type")
    for field in dataclasses.fields(obj.hyperparameters):
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ContractError(f"hyperparameter {field.name!r} has no default")
    if not callable(obj.build):
        raise ContractError("build must be callable: build(hyperparameters, input_size) -> encoder")
    return obj


def checked_exporter(obj: Any, entry_name: str) -> Exporter:
    """`obj` (an entry point's object) as an Exporter, or a ContractError saying what is missing."""
    if isinstance(obj, type):
        obj = obj()
    for attr in ("name", "summary", "export"):
        if not hasattr(obj, attr):
            raise ContractError(f"exporter {obj!r} lacks {attr!r}; expected a zoo.plugin_api.Exporter")
    if obj.name != entry_name:
        raise ContractError(f"entry point name {entry_name!r} differs from the exporter's name {obj.name!r}")
    return obj
