"""A run directory: what `zoo train` writes and everything else reads.

    config.json     resolved config, seed, data source and fingerprint, library versions
    tokenizer.model the SentencePiece model the run was trained with
    model.pt        best weights (a plain state dict)
    last.pt         resumable training state (model, optimizer, epoch/step, RNG, accumulators)
    metrics.jsonl   one record per logged step, per validation and per epoch, plus the test result
    curves.png      train/validation loss and accuracy per epoch
    README.md       model card

Every file is written atomically (temporary file + rename), and checkpoints are
read with `torch.load(weights_only=True)`: loading never executes code.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from zoo.config import RunConfig
from zoo.errors import CheckpointError

CONFIG, TOKENIZER, WEIGHTS, LAST, METRICS, CURVES, CARD = (
    "config.json", "tokenizer.model", "model.pt", "last.pt", "metrics.jsonl", "curves.png", "README.md")


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write through `write(file)` into a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), mode="w")


def save_torch(obj: Any, path: Path) -> None:
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def load_torch(path: Path) -> Any:
    """Load a checkpoint without executing code from it; a corrupt file is a CheckpointError."""
    import torch

    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the run may not have finished an epoch yet")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc}); "
                              "it may be corrupt or not written by the zoo") from None


@dataclass
class RunDir:
    path: Path

    def file(self, name: str) -> Path:
        return self.path / name

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        run = cls(Path(path))
        if not run.path.is_dir():
            raise CheckpointError(f"run directory {run.path} does not exist; pass a directory written by `zoo train`")
        if not run.file(CONFIG).is_file():
            raise CheckpointError(f"{run.path} has no {CONFIG}; is it a run directory written by `zoo train`?")
        return run

    def read_info(self) -> dict[str, Any]:
        try:
            return json.loads(self.file(CONFIG).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{self.file(CONFIG)} is corrupt ({exc}); the run cannot be rebuilt") from None

    def config(self) -> RunConfig:
        from zoo.recipes import config_from_dict

        info = self.read_info()
        if "config" not in info:
            raise CheckpointError(f"{self.file(CONFIG)} has no 'config' entry; the run cannot be rebuilt")
        return config_from_dict(info["config"])

    def write_info(self, info: dict[str, Any]) -> None:
        atomic_write_text(self.file(CONFIG), json.dumps(info, indent=2) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        path = self.file(METRICS)
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def load_model(self, device: str = "cpu"):
        """The classifier with the run's best weights, in eval mode."""
        from zoo.model import build_classifier
        from zoo.tokenizer import Tokenizer

        config = self.config()
        vocab = Tokenizer(self.file(TOKENIZER)).vocab_size
        model = build_classifier(config, vocab)
        state = load_torch(self.file(WEIGHTS))
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, KeyError) as exc:
            raise CheckpointError(f"{self.file(WEIGHTS)} does not fit the model in {CONFIG}: {exc}") from None
        return model.to(device).eval()
