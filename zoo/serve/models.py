"""The models a server answers for: each a name and an exported ONNX model (ids in with its tokenizer beside it,
or text in), with what `GET /v1/models` says of it. Named on the command line only; a request never names a path.

`zoo serve RUN` serves the run's export (model.onnx, else model-text.onnx) under the run's name; `zoo serve
PATH.onnx` the file under its folder's name; `NAME=PATH` chooses the name.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import CheckpointError, ConfigError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
EXPORTS = ("model.onnx", "model-text.onnx")  # what a run directory serves, in this order


@dataclass(frozen=True)
class ModelSource:
    """Where a served model comes from: its name, its .onnx file and the run it was exported from (if any)."""

    name: str
    onnx: Path
    run: Path | None


def model_sources(arguments: list[str]) -> list[ModelSource]:
    """The models `zoo serve` was given (`PATH` or `NAME=PATH`), checked: files that exist, distinct names."""
    if not arguments:
        raise ConfigError("name at least one model to serve: a run directory, a model.onnx or NAME=PATH")
    sources = [_source(argument) for argument in arguments]
    names = [source.name for source in sources]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"two models would be served as {', '.join(twice)}; give them names: NAME=PATH")
    return sources


def _source(argument: str) -> ModelSource:
    name, given, path = None, argument, Path(argument)
    if "=" in argument and not path.exists():
        name, _, given = argument.partition("=")
        path = Path(given)
        if not NAME.fullmatch(name):
            raise ConfigError(f"{argument}: a model's name is letters, digits, '.', '_' and '-' (64 at most)")
    if path.is_dir():
        found = next((path / export for export in EXPORTS if (path / export).is_file()), None)
        if found is None:
            raise ConfigError(f"{path} has no exported model ({' or '.join(EXPORTS)}); export it first: "
                              f"zoo export {path} --format onnx")
        return ModelSource(name or _name_of(path), found, path if (path / "config.json").is_file() else None)
    if not path.is_file() or path.suffix != ".onnx":
        raise ConfigError(f"{given}: not a run directory or an .onnx file")
    run = path.parent if (path.parent / "config.json").is_file() else None
    return ModelSource(name or _name_of(path.parent), path, run)


def _name_of(folder: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "-", folder.resolve().name).strip("-.") or "model"
    return name[:64]


def describe(source: ModelSource, metadata: dict[str, str], classes: list[str]) -> dict[str, Any]:
    """What `GET /v1/models` says of a model: its classes, architecture, recipe, input, the test figures its
    run recorded, and the sha256 of the exported file."""
    return {"name": source.name, "classes": classes, "architecture": metadata.get("architecture"),
            "recipe": metadata.get("recipe"), "input": metadata.get("input", "ids"),
            "quantization": metadata.get("quantization"), "test": _test_figures(source.run),
            "sha256": hashlib.sha256(source.onnx.read_bytes()).hexdigest()}


def card(source: ModelSource) -> str | None:
    """The model card (the run's README.md), if the model comes with one."""
    for folder in filter(None, (source.run, source.onnx.parent)):
        if (folder / "README.md").is_file():
            return (folder / "README.md").read_text(encoding="utf-8", errors="replace")
    return None


def _test_figures(run: Path | None) -> dict[str, float] | None:
    """The test accuracy and macro-F1 the run recorded (what its card shows), or None."""
    if run is None or not (run / "metrics.jsonl").is_file():
        return None
    try:
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError):
        raise CheckpointError(f"{run / 'metrics.jsonl'} is not readable; the run's records are damaged") from None
    test = [r for r in records if isinstance(r, dict) and r.get("type") == "test"]
    return {k: test[-1].get(k) for k in ("accuracy", "macro_f1", "count")} if test else None
