"""The process a run trains in: its device and threads, Ctrl-C and SIGTERM as a request to stop, the progress a
person sees, and the library versions a run records."""

from __future__ import annotations

import os
import platform
import signal

import torch

from zoo import __version__
from zoo.errors import ConfigError, ZooError
from zoo.training.world import World


class Interrupted(ZooError):
    """Training stopped by a signal after writing a resumable checkpoint."""


def pick_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available to this torch build; use --device cpu")
    if requested not in ("cpu", "cuda"):
        raise ConfigError(f"--device {requested!r}: expected auto, cpu or cuda")
    return requested


def set_threads(threads: int | None, world: World) -> None:
    """--threads, else the cores shared out among this machine's processes of the run."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world.size) or 1)
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // local))


class StopFlag:
    """Turns the first SIGINT/SIGTERM into a request to stop at the next step boundary."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no signal handling
                pass
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))  # a second signal acts at once

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def library_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"zoo": __version__, "python": platform.python_version()}
    for name in ("torch", "sentencepiece", "datasets", "numpy", "onnx", "onnxruntime"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions
