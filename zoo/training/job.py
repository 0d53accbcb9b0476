"""A run to train: the request (`zoo train` and `zoo pretrain` ask alike), and the run directory it trains, new
or resumed, with its record and where its training stands."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from zoo.config.sections import RunConfig
from zoo.data.splits import DataSpec
from zoo.errors import CheckpointError, ConfigError
from zoo.runs.layout import LAST, METRICS, RunDir, new_run_dir
from zoo.runs.record import RunRecord, read_record
from zoo.training.checkpoints import read_checkpoint
from zoo.training.progress import Progress
from zoo.training.world import World


@dataclass
class RunRequest:
    """A new run (`config`, `data`, `out`, ...) or `resume` of an interrupted one (its own settings; `data` may
    name the same data elsewhere)."""

    config: RunConfig | None
    data: DataSpec | str | None = None  # a str is a source
    out: Path | None = None
    device: str = "auto"
    threads: int | None = None
    max_steps: int | None = None
    budget_minutes: float | None = None  # stop after this many minutes of training; the schedule follows it
    progress: bool = False  # a progress bar (in a terminal)
    resume: Path | None = None
    allow_other_data: bool = False  # resume with data whose fingerprint differs from the run's
    init_from: Path | None = None  # `zoo train`: a `zoo pretrain` run (or one of its snapshots) to start from
    # `zoo train`: what the recipe changes for a small set of short texts ({"section.key": value}; zoo.training.fit)
    small_data: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> DataSpec:
        return self.data if isinstance(self.data, DataSpec) else DataSpec(source=self.data)


@dataclass
class Job:
    """A run directory to train, its record, and where its training stands."""

    run: RunDir
    record: RunRecord
    data: str | None  # a source that replaces the run's recorded one (resume only)
    checkpoint: dict | None  # None: start at step 0
    progress: Progress = field(default_factory=Progress)

    @property
    def fresh(self) -> bool:
        """Nothing trained yet: the weights start from scratch (or from a language model)."""
        return self.checkpoint is None


def new_job(request: RunRequest, kind: str, world: World, extra: dict[str, Any]) -> Job:
    """A new run: rank 0 creates its directory (the other ranks get its path) and its first record."""
    config = request.config
    path = new_run_dir(request.out, config.recipe).path if world.main else None
    run = RunDir(Path(world.broadcast(str(path) if path else None)))
    record = RunRecord(kind=kind, config=config, seed=config.train.seed, max_steps=request.max_steps,
                       data=request.spec.to_dict(), created=datetime.now().isoformat(timespec="seconds"),
                       budget_minutes=request.budget_minutes, **extra)
    if request.small_data and kind == "train":  # decided once the training texts are read (zoo.training.fit)
        record.setup["fit"] = {"small_data_settings": request.small_data}
    return Job(run, record, None, None)


def resumed_job(request: RunRequest, kind: str) -> Job:
    """`--resume`: the run, checked (the right kind, not finished, its metrics intact), and its checkpoint."""
    run = RunDir.open(request.resume)
    record = read_record(run)
    if record.kind != kind:
        raise ConfigError(f"{run.path} is a `zoo {record.kind}` run; resume it with "
                          f"`zoo {record.kind} --resume {run.path}`")
    checkpoint, progress = read_checkpoint(run)
    if progress.finished:
        after = (f"evaluate it with `zoo evaluate {run.path}`" if kind == "train"
                 else f"fine-tune from it with `zoo train RECIPE --init-from {run.path}`")
        raise ConfigError(f"{run.path} has finished training; {after}")
    run.metrics()  # a corrupt metrics file is an error now, not after the training it would have lost
    metrics = run.file(METRICS)
    if checkpoint is not None and (metrics.stat().st_size if metrics.is_file() else 0) < progress.metrics_bytes:
        raise CheckpointError(f"{run.file(METRICS)} is shorter than {run.file(LAST)} expects: it was truncated, "
                              "and the run's records are lost. Train the run again")
    return Job(run, record, request.spec.source, checkpoint, progress)
