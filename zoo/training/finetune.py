"""Fine-tuning from a language model (`zoo train RECIPE --init-from PRETRAIN_RUN`): which weights, whether they fit
the classifier, the language model's tokenizer, and a check that it never read the run's validation or test
texts (ULMFiT's pretrain -> fine-tune flow, Howard & Ruder 2018)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from zoo.config.sections import RunConfig
from zoo.data.splits import Splits
from zoo.data.text import text_digests
from zoo.errors import CheckpointError, ConfigError, DataError
from zoo.runs.layout import CONFIG, LM_TEXTS, LM_WEIGHTS, SNAPSHOTS, RunDir, load_torch
from zoo.runs.loaders import run_tokenizer
from zoo.runs.record import read_record


def pretrained_record(path: Path, config: RunConfig) -> dict:
    """What config.json records of `--init-from PATH`: a pretrain run dir (its lm.pt) or one of its snapshots.

    The classifier's architecture, encoder hyperparameters and embedding size must be the language model's.
    """
    path = Path(path)
    weights = path / LM_WEIGHTS if path.is_dir() else path
    folder = path if path.is_dir() else (path.parent.parent if path.parent.name == SNAPSHOTS else path.parent)
    run = RunDir(folder)
    record = read_record(run) if run.file(CONFIG).is_file() else None
    if record is None or record.kind != "pretrain":
        raise ConfigError(f"--init-from {path}: not a `zoo pretrain` run directory (or a snapshot inside one)")
    if not weights.is_file():
        raise ConfigError(f"--init-from {path}: {weights} does not exist yet (the run has not finished a "
                          "validation); wait for it, or name one of its snapshots")
    pretrained = record.config
    differences = [f"architecture {pretrained.architecture!r} vs {config.architecture!r}"] \
        if pretrained.architecture != config.architecture else []
    ours, theirs = config.to_dict(), pretrained.to_dict()
    differences += [f"encoder.{k} = {theirs['encoder'][k]!r} vs {v!r}" for k, v in ours["encoder"].items()
                    if theirs["encoder"].get(k) != v]
    if pretrained.classifier.embedding_dim != config.classifier.embedding_dim:
        differences.append(f"classifier.embedding_dim = {pretrained.classifier.embedding_dim} vs "
                           f"{config.classifier.embedding_dim}")
    if differences:
        raise ConfigError(f"--init-from {path}: the pretrained model does not fit this one (pretrained vs this "
                          f"run: {'; '.join(differences)}); train a recipe with the same sizes (see `zoo info`)")
    return {"run": str(folder.resolve()), "weights": str(weights.resolve()), "sha256": _sha256(weights),
            "tokenizer_sha256": run_tokenizer(run, record).sha256}


def pretrained_tokenizer(record: dict):
    """The pretrain run's tokenizer (the classifier reads text exactly as the language model did)."""
    run = RunDir(Path(record["run"]))
    tokenizer = run_tokenizer(run, read_record(run))
    if tokenizer.sha256 != record["tokenizer_sha256"]:
        raise CheckpointError(f"the tokenizer of {record['run']} changed since this run started from it")
    return tokenizer


def check_held_out(record: dict, splits: Splits) -> None:
    """Refuse to fine-tune on data whose validation or test texts the language model learned from (its figures
    would be inflated); texts of the run's own train split do not count, the classifier learns from them anyway."""
    path = Path(record["run"]) / LM_TEXTS
    if not path.is_file():
        print(f"note: {record['run']} does not list the texts it learned from (it was made by an older zoo), so "
              "nothing checks that this run's validation and test texts were not among them", file=sys.stderr)
        return
    try:
        learned = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    own = text_digests(splits.train["text"])
    seen = {}
    for name in ("validation", "test"):
        split = getattr(splits, name)
        if split is not None:
            digests = text_digests(split["text"], distinct=False)
            seen[name] = int((np.isin(digests, learned) & ~np.isin(digests, own)).sum())
    if any(seen.values()):
        counts = " and ".join(f"{n:,} of its {name} texts" for name, n in seen.items() if n)
        raise DataError(f"--init-from {record['run']}: the language model learned from {counts} ({splits.source}); "
                        "validation and test figures would be inflated. Pretrain with this --data instead "
                        "(`zoo pretrain` never learns from its own data's validation or test texts)")


def load_pretrained(model: torch.nn.Module, record: dict) -> None:
    """Copy the language model's embedding and encoder weights into the classifier."""
    weights = Path(record["weights"])
    if not weights.is_file() or _sha256(weights) != record["sha256"]:
        raise CheckpointError(f"{weights} is missing or changed since this run was started from it; start a new run")
    state = load_torch(weights)
    subset = {k: v for k, v in state.items() if k.startswith(("embedding.", "encoder."))}
    try:
        missing, unexpected = model.load_state_dict(subset, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights} does not fit this model: {exc}") from None
    left_out = [k for k in missing if k.startswith(("embedding.", "encoder."))]
    if left_out or unexpected:
        raise CheckpointError(f"{weights} does not fit this model: missing {left_out}, unexpected {unexpected}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
