"""A run directory's files: what `zoo train` and `zoo pretrain` write and everything else reads.

    config.json     the run's record (zoo.runs.record): config, seed, data, tokenizer, library versions
    tokenizer.model the SentencePiece model the run was trained with
    model.pt        best weights (a plain state dict)
    last.pt         resumable training state (model, optimizer, epoch/step, RNG, accumulators)
    metrics.jsonl   one record per logged step, per validation and per epoch, plus the test result
    curves.png      train/validation loss and accuracy per epoch
    README.md       model card
    lm.pt, texts.npy, snapshots/   a pretrain run's kept language model, the digests of the texts it read, and
                                   its snapshots

Every file is written atomically (temporary file + rename), and checkpoints are
read with `torch.load(weights_only=True)`: loading never executes code.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from zoo.errors import CheckpointError, ConfigError
from zoo.faults import failpoint
from zoo.files import atomic_write, atomic_write_text

CONFIG, TOKENIZER, WEIGHTS, LAST, METRICS, CURVES, CARD = (
    "config.json", "tokenizer.model", "model.pt", "last.pt", "metrics.jsonl", "curves.png", "README.md")
LM_WEIGHTS, LM_TEXTS, SNAPSHOTS = "lm.pt", "texts.npy", "snapshots"  # a pretrain run's
LOCK = ".zoo.lock"  # held by the process that trains the run
# What a run writes before its first step: a folder holding only these never trained and may be taken over.
SETUP_FILES = {CONFIG, TOKENIZER, METRICS, LOCK, LM_TEXTS}


def never_trained(folder: Path) -> bool:
    """A zoo run directory that stopped before its first optimizer step (a plugin failing on the first batch, bad
    data, a kill during setup): only setup files, no checkpoint and no metrics records. Nothing in it is lost by
    starting again."""
    files = [p for p in folder.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp"))]
    metrics = folder / METRICS
    return ((folder / CONFIG).is_file() and all(p.is_file() and p.name in SETUP_FILES for p in files)
            and (not metrics.exists() or metrics.stat().st_size == 0))


def clear_setup(folder: Path) -> None:
    """Remove what a run that never trained left in `folder` (its lock stays: the caller holds it)."""
    for item in folder.iterdir():
        if item.name != LOCK:
            item.unlink()


def new_run_dir(out: Path | None, recipe: str) -> "RunDir":
    """A fresh run directory: runs/RECIPE-<timestamp>[-N] (created atomically, so never shared), or `out`.

    An explicit `out` that is a file or a non-empty folder is refused.
    """
    from datetime import datetime

    if out is None:
        base = Path("runs") / f"{recipe}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        base.parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
            try:
                candidate.mkdir()  # atomic: of two processes in the same second, one gets -2
                return RunDir(candidate)
            except FileExistsError:
                continue
        raise ConfigError(f"cannot find a free run directory name next to {base}; pass --out")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is an existing file; pick a folder that does not exist yet")
    if out.is_dir() and any(p.name != LOCK for p in out.iterdir()) and not never_trained(out):
        raise ConfigError(f"--out {out} already exists and is not empty; pick another --out, or --resume it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the run directory {out}: {exc.strerror}") from None
    return RunDir(out)


def save_torch(obj: Any, path: Path, failpoint_name: str | None = None) -> None:
    import torch

    atomic_write(path, lambda f: torch.save(obj, f),
                 before_rename=(lambda: failpoint(failpoint_name)) if failpoint_name else None)


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

    @contextmanager
    def lock(self, fresh: bool = False) -> Iterator[None]:
        """Hold the run's lock while training it: a second process training the same run is refused.

        `fresh`: the run must still be empty once the lock is held (two `--out` of one new folder).
        """
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.file(LOCK)), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise ConfigError(f"{self.path} is being trained by another process right now; wait for it, "
                              "or pick another --out") from None
        try:
            if fresh and any(p.name != LOCK for p in self.path.iterdir()):
                if not never_trained(self.path):
                    raise ConfigError(f"{self.path} was just taken by another `zoo train`; pick another --out")
                print(f"note: {self.path} held a run that stopped before its first training step; starting afresh "
                      "in its place", file=sys.stderr)
                clear_setup(self.path)
            for stale in self.path.glob(".*.tmp"):  # an atomic write cut short by a kill
                stale.unlink()
            yield
        finally:
            lock.release()

    def read_json(self) -> dict[str, Any]:
        """config.json as it lies on disk (zoo.runs.record reads and checks it)."""
        try:
            info = json.loads(self.file(CONFIG).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{self.file(CONFIG)} is corrupt ({exc}); the run cannot be rebuilt") from None
        if not isinstance(info, dict):
            raise CheckpointError(f"{self.file(CONFIG)} is not a zoo run config (expected a JSON object); "
                                  "the run cannot be rebuilt")
        return info

    def write_json(self, info: dict[str, Any]) -> None:
        atomic_write_text(self.file(CONFIG), json.dumps(info, indent=2, allow_nan=False) + "\n")

    def append_metric(self, record: dict[str, Any]) -> None:
        with open(self.file(METRICS), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, allow_nan=False) + "\n")

    def truncate_metrics(self, size: int) -> None:
        """Drop the metrics records written after `size` bytes (those after the checkpoint being resumed)."""
        with open(self.file(METRICS), "ab") as handle:
            handle.truncate(size)

    def metrics(self) -> list[dict[str, Any]]:
        """The metrics.jsonl records; a last line cut short by a kill is left out."""
        path = self.file(METRICS)
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        records = []
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):
                    break
                raise CheckpointError(f"{path} line {number} is not JSON; the metrics file is corrupt") from None
            if not isinstance(record, dict) or not isinstance(record.get("type"), str):
                raise CheckpointError(f"{path} line {number} is not a zoo metrics record")
            records.append(record)
        return records
