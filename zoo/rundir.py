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
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from zoo.config import RunConfig
from zoo.errors import CheckpointError
from zoo.files import atomic_write, atomic_write_text

CONFIG, TOKENIZER, WEIGHTS, LAST, METRICS, CURVES, CARD = (
    "config.json", "tokenizer.model", "model.pt", "last.pt", "metrics.jsonl", "curves.png", "README.md")
LOCK = ".zoo.lock"  # held by the process that trains the run
# What a run writes before its first step: a folder holding only these never trained and may be taken over.
SETUP_FILES = {CONFIG, TOKENIZER, METRICS, LOCK, "texts.npy"}


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

    from zoo.errors import ConfigError

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


def _note_other_segmenter(recorded: str | None, tokenizer, run: Path) -> None:
    """Say so when this environment segments text with another implementation than the run was trained with
    (zoo.segmenter: about 1.4% of IMDB reviews get other ids)."""
    if recorded is None:
        return
    family = lambda name: name.rsplit("-", 1)[0]  # noqa: E731 (the implementation, without its version)
    current = tokenizer.segmenter.name
    if family(current) != family(recorded):
        print(f"note: {run} was trained on text segmented by {recorded}; here {current} segments it, which gives "
              "other ids for about 1% of long texts (install onnxruntime-extensions where it has wheels to match)",
              file=sys.stderr)


def save_torch(obj: Any, path: Path, failpoint_name: str | None = None) -> None:
    import torch

    from zoo.faults import failpoint

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

        from zoo.errors import ConfigError

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

    def read_info(self) -> dict[str, Any]:
        try:
            info = json.loads(self.file(CONFIG).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{self.file(CONFIG)} is corrupt ({exc}); the run cannot be rebuilt") from None
        if not isinstance(info, dict) or not all(isinstance(info.get(k, {}), dict) for k in ("config", "data", "tokenizer")):
            raise CheckpointError(f"{self.file(CONFIG)} is not a zoo run config (expected a JSON object with "
                                  "'config', 'data' and 'tokenizer' objects); the run cannot be rebuilt")
        return info

    def config(self) -> RunConfig:
        from zoo.errors import ZooError
        from zoo.recipes import config_from_dict

        info = self.read_info()
        if "config" not in info:
            raise CheckpointError(f"{self.file(CONFIG)} has no 'config' entry; the run cannot be rebuilt")
        try:
            return config_from_dict(info["config"])
        except CheckpointError:
            raise
        except ZooError as exc:
            raise CheckpointError(f"{self.file(CONFIG)}: {exc}") from None

    def write_info(self, info: dict[str, Any]) -> None:
        atomic_write_text(self.file(CONFIG), json.dumps(info, indent=2, allow_nan=False) + "\n")

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

    def tokenizer(self):
        """The run's tokenizer, checked against the sha256 that config.json recorded at training time."""
        from zoo.tokenizer import Tokenizer

        tokenizer = Tokenizer(self.file(TOKENIZER))
        recorded = self.read_info().get("tokenizer", {})
        expected = recorded.get("sha256")
        if expected is not None and tokenizer.sha256 != expected:
            raise CheckpointError(
                f"{self.file(TOKENIZER)} is not the tokenizer this run was trained with (sha256 "
                f"{tokenizer.sha256[:12]}..., {CONFIG} records {str(expected)[:12]}...): it was replaced, perhaps "
                "by an export into this folder. Restore the run's own tokenizer.model (or train the run again)")
        _note_other_segmenter(recorded.get("segmenter"), tokenizer, self.path)
        return tokenizer

    def classes(self) -> list[str]:
        """The run's class names (runs from before they were recorded: IMDB's neg, pos)."""
        from zoo.metrics import BINARY

        classes = self.read_info().get("data", {}).get("classes", list(BINARY))
        if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) for c in classes)):
            raise CheckpointError(f"{self.file(CONFIG)}: data.classes is not a list of class names")
        return classes

    def data_spec(self, data: str | None = None):
        """The run's data (zoo.data.DataSpec), with its source replaced by `data` when given."""
        from dataclasses import replace

        from zoo.data import DataSpec

        spec = DataSpec.from_dict(self.read_info().get("data", {}))
        return replace(spec, source=data) if data else spec

    def load_data(self, data: str | None, allow_other_data: bool = False, **options: Any):
        """The run's data (or the source `data`), refused when its fingerprint differs from the run's."""
        from zoo.data import load_splits
        from zoo.errors import DataError

        recorded = self.read_info().get("data", {})
        options.setdefault("with_unsupervised", bool(recorded.get("with_unsupervised")))  # part of the fingerprint
        splits = load_splits(self.data_spec(data), **options)
        expected = recorded.get("fingerprint")
        if expected and splits.fingerprint != expected and not allow_other_data:
            raise DataError(
                f"the data at {splits.source} is not the data {self.path} was trained on (fingerprint "
                f"{splits.fingerprint}, the run has {expected}): other labels, another test split or a different "
                "train/validation carve would give wrong figures. Pass the run's own --data, or add "
                "--allow-other-data to use this data anyway")
        return splits

    def load_model(self, device: str = "cpu"):
        """The classifier with the run's best weights, in eval mode."""
        import torch

        from zoo.model import build_classifier

        if self.read_info().get("kind") == "pretrain":
            raise CheckpointError(f"{self.path} is a `zoo pretrain` run (a language model, not a classifier): "
                                  f"fine-tune it with `zoo train RECIPE --init-from {self.path}`, then use that run")
        config = self.config()
        model = build_classifier(config, self.tokenizer().vocab_size, len(self.classes()))
        state = load_torch(self.file(WEIGHTS))
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{self.file(WEIGHTS)} is not a state dict of tensors; it was not written by the zoo")
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{self.file(WEIGHTS)} does not fit the model in {CONFIG}: {exc}") from None
        return model.to(device).eval()
