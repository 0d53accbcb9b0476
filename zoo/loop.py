"""What the training loops share (`zoo train` in zoo.train, `zoo pretrain` in zoo.pretrain).

The learning-rate schedule (a pure function of the step), the optimizer and its
layer groups, opening a new or resumed run directory (rank 0 creates it, the
others learn its path), checkpoint reading and the RNG state of every rank,
finite-number checks, the stop flag for Ctrl-C, metrics records and the
progress bar.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import sys
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from zoo import __version__
from zoo.config import RunConfig, TrainConfig
from zoo.distributed import World
from zoo.errors import CheckpointError, ConfigError, ZooError
from zoo.model import count_parameters
from zoo.rundir import LAST, METRICS, WEIGHTS, RunDir, load_torch, new_run_dir, save_torch

LAYER_GROUPS = ("head", "encoder", "embedding")  # top down: the order of discriminative rates and unfreezing


class Interrupted(ZooError):
    """Training stopped by a signal after writing a resumable checkpoint."""


class NonFiniteError(ZooError):
    """The loss, the gradients or the weights stopped being finite numbers."""


def pick_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available to this torch build; use --device cpu")
    if requested not in ("cpu", "cuda"):
        raise ConfigError(f"--device {requested!r}: expected auto, cpu or cuda")
    return requested


def learning_rate(step: int, total: int, config: TrainConfig) -> float:
    """Linear warmup over warmup_fraction of the steps, then constant, cosine or linear decay to 0."""
    warmup = int(total * config.warmup_fraction)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if config.schedule == "constant":
        return config.lr
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.lr * (1.0 - progress)


def layer_group(parameter_name: str) -> str:
    """embedding.* -> embedding, encoder.* -> encoder, everything else (pooling head, LM head) -> head."""
    first = parameter_name.split(".", 1)[0]
    return first if first in ("embedding", "encoder") else "head"


def group_scale(layer: str, step: int, total: int, config: TrainConfig) -> float:
    """The factor on a layer group's learning rate: discriminative rates (lr_decay per group below the head)
    times 0 while the group is still frozen (gradual unfreezing: one more group every unfreeze_fraction)."""
    depth = LAYER_GROUPS.index(layer)
    if config.unfreeze_fraction and step < depth * config.unfreeze_fraction * total:
        return 0.0
    return config.lr_decay ** -depth


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW over one group per layer group and decay kind; weight decay skips biases, norms and
    embeddings (1-d and embedding tensors). Each group remembers its `layer` for `set_learning_rates`."""
    groups: dict[tuple[str, bool], list] = {}
    for name, param in model.named_parameters():
        decays = not (param.ndim < 2 or name.startswith("embedding."))
        groups.setdefault((layer_group(name), decays), []).append(param)
    param_groups = [{"params": params, "weight_decay": config.weight_decay if decays else 0.0, "layer": layer}
                    for (layer, decays), params in groups.items()]
    if config.optimizer == "adam":
        return torch.optim.Adam(param_groups, lr=config.lr)
    return torch.optim.AdamW(param_groups, lr=config.lr)


def set_learning_rates(optimizer: torch.optim.Optimizer, rate: float, step: int, total: int,
                       config: TrainConfig) -> None:
    for group in optimizer.param_groups:
        group["lr"] = rate * group_scale(group["layer"], step, total, config)


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_sum: float, config: TrainConfig,
                   step: int, run: RunDir) -> None:
    """One update after the backward pass: the loss and the clipped gradient norm checked finite first, so that
    a diverging step changes no weight."""
    require_finite(loss_sum, "loss", step, run)
    if config.grad_clip:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        require_finite(float(norm), "gradient norm", step, run)
    optimizer.step()


def record_setup(run: RunDir, world: World, model: torch.nn.Module, device: str) -> None:
    """What the run trains on, in config.json: parameter count, device, threads, processes, library versions."""
    if world.main:
        run.write_info(run.read_info() | {
            "parameters": count_parameters(model), "device": device, "threads": torch.get_num_threads(),
            "processes": world.size, "versions": library_versions()})


def log_step(run: RunDir, world: World, bar, progress: Any, config: TrainConfig, step_loss: float, lr: float,
             **shown: str) -> None:
    """After a step: the progress bar (epoch, the loop's `shown` figures, tokens/s), and a `step` record every
    log_every steps."""
    rate = progress.tokens / max(progress.train_seconds, 1e-9)
    if bar is not None:
        bar.update(1)
        bar.set_postfix(epoch=progress.epoch + 1, **shown, tok_s=f"{rate:,.0f}")
    if config.log_every and progress.global_step % config.log_every == 0:
        append_metric(run, world, {"type": "step", "epoch": progress.epoch + 1, "step": progress.global_step,
                                   "loss": step_loss, "lr": lr, "tokens_per_second": rate,
                                   "train_seconds": progress.train_seconds})


def library_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"zoo": __version__, "python": platform.python_version()}
    for name in ("torch", "sentencepiece", "datasets", "numpy", "onnx", "onnxruntime"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


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


def append_metric(run: RunDir, world: World, record: dict) -> None:
    if world.main:
        with open(run.file(METRICS), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, allow_nan=False) + "\n")


def require_finite(value: float, what: str, step: int, run: RunDir) -> None:
    if not math.isfinite(value):
        raise NonFiniteError(
            f"training diverged at step {step}: the {what} is {value}. Nothing from this step was saved: "
            f"{run.file(LAST)} holds the last good checkpoint and {run.file(WEIGHTS)} the best weights so far. "
            "Train again with a lower --lr or --set train.grad_clip=1.0")


def weights_finite(model: torch.nn.Module) -> float:
    """0.0 when every parameter is finite, else nan (for require_finite)."""
    return 0.0 if all(bool(torch.isfinite(p).all()) for p in model.parameters()) else math.nan


@dataclass
class Job:
    """A run directory to train, with where it stands."""

    run: RunDir
    config: RunConfig
    data: str | None  # a source that replaces the run's recorded one (resume only)
    max_steps: int | None
    checkpoint: dict | None  # None: start at step 0
    progress: Any  # the loop's progress dataclass


def read_checkpoint(run: RunDir, progress_type: type) -> tuple[dict | None, Any]:
    """last.pt and its progress; (None, a fresh progress) when the run was killed before its first checkpoint."""
    if not run.file(LAST).exists():
        return None, progress_type()
    checkpoint = load_torch(run.file(LAST))
    try:
        known = {f.name for f in fields(progress_type)}
        progress = progress_type(**{k: v for k, v in checkpoint["progress"].items() if k in known})
        for key in ("model", "optimizer", "rng"):
            checkpoint[key]  # noqa: B018 (presence check)
    except (KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{run.file(LAST)} is not a zoo training checkpoint ({type(exc).__name__}: {exc}); "
                              "it cannot be resumed") from None
    return checkpoint, progress


def open_job(resume: Path | None, out: Path | None, config: RunConfig | None, data: Any, max_steps: int | None,
             progress_type: type, kind: str, world: World) -> Job:
    """The run to train: `resume` (checked: not finished, metrics intact, the right kind) or a new one.

    Rank 0 creates a new run directory; the other ranks get its path.
    """
    if resume is None:
        path = new_run_dir(out, config.recipe).path if world.main else None
        return Job(RunDir(Path(world.broadcast(str(path) if path else None))), config, None, max_steps, None,
                   progress_type())
    run = RunDir.open(resume)
    info = run.read_info()
    if info.get("kind", "train") != kind:
        command = "pretrain" if info.get("kind") == "pretrain" else "train"
        raise ConfigError(f"{run.path} is a `zoo {command}` run; resume it with `zoo {command} --resume {run.path}`")
    config = run.config()
    checkpoint, progress = read_checkpoint(run, progress_type)
    if progress.finished:
        after = (f"evaluate it with `zoo evaluate {run.path}`" if kind == "train"
                 else f"fine-tune from it with `zoo train RECIPE --init-from {run.path}`")
        raise ConfigError(f"{run.path} has finished training; {after}")
    run.metrics()  # a corrupt metrics file is an error now, not after the training it would have lost
    metrics = run.file(METRICS)
    if checkpoint is not None and (metrics.stat().st_size if metrics.is_file() else 0) < progress.metrics_bytes:
        raise CheckpointError(f"{run.file(METRICS)} is shorter than {run.file(LAST)} expects: it was truncated, "
                              "and the run's records are lost. Train the run again")
    # the step budget is part of the run (it shapes the LR schedule)
    source = data.source if hasattr(data, "source") else data
    return Job(run, config, source, info.get("max_steps"), checkpoint, progress)


def first_record(job: Job, data_spec: dict, kind: str, extra: dict | None = None) -> None:
    """config.json of a new run, written before any work so that a run killed at any later point resumes."""
    job.run.write_info({"kind": kind, "config": job.config.to_dict(), "seed": job.config.train.seed,
                        "max_steps": job.max_steps, "data": data_spec,
                        "created": datetime.now().isoformat(timespec="seconds"), **(extra or {})})


def rng_states(world: World, device: str) -> list[dict] | None:
    """Every rank's RNG state, on rank 0 (a collective call: every rank makes it)."""
    state = {"torch": torch.get_rng_state()}
    if device == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return world.gather(state)


def restore_rng(checkpoint: dict, world: World, device: str, run: RunDir) -> None:
    ranks = checkpoint["rng"].get("ranks") or [checkpoint["rng"]]
    if len(ranks) != world.size:
        raise ConfigError(f"{run.file(LAST)} was written by {len(ranks)} process(es); resume it with the same "
                          f"number (torchrun --nproc-per-node ...), not {world.size}")
    torch.set_rng_state(ranks[world.rank]["torch"])
    if device == "cuda" and "cuda" in ranks[world.rank]:
        torch.cuda.set_rng_state_all(ranks[world.rank]["cuda"])


def restore_training_state(checkpoint: dict, parts: dict[str, Any], run: RunDir, world: World, device: str) -> None:
    """Load each part (model, optimizer, ...: anything with load_state_dict) from last.pt, and this rank's RNG."""
    try:
        for key, part in parts.items():
            part.load_state_dict(checkpoint[key])
    except (RuntimeError, TypeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{run.file(LAST)} does not fit this run's model ({type(exc).__name__}: {exc}); "
                              "it cannot be resumed") from None
    restore_rng(checkpoint, world, device, run)


def save_training_state(parts: dict[str, Any], progress: Any, run: RunDir, world: World, device: str) -> None:
    """last.pt: the parts' state dicts, the progress and every rank's RNG state; written by rank 0 alone, and only
    when the model's weights are finite (a collective call: every rank makes it)."""
    require_finite(weights_finite(parts["model"]), "model's weights", progress.global_step, run)
    rng = rng_states(world, device)
    if world.main:
        progress.metrics_bytes = run.file(METRICS).stat().st_size
        state = {key: part.state_dict() for key, part in parts.items()}
        save_torch(state | {"progress": asdict(progress), "rng": {"ranks": rng}}, run.file(LAST),
                   failpoint_name="checkpoint-write")


def checkpoint_if_due(stop: StopFlag, progress: Any, config: TrainConfig, save: Any, world: World, run: RunDir,
                      command: str) -> None:
    """After a step: save and raise Interrupted when any rank was asked to stop, else save every checkpoint_every."""
    if world.any(stop.requested):
        save()
        raise Interrupted(f"interrupted at step {progress.global_step}; checkpoint saved. "
                          f"Resume with: zoo {command} --resume {run.path}")
    if config.checkpoint_every and progress.global_step % config.checkpoint_every == 0:
        save()


def metrics_truncate(run: RunDir, world: World, size: int) -> None:
    """Drop metrics records written after the checkpoint being resumed."""
    if world.main:
        with open(run.file(METRICS), "ab") as handle:
            handle.truncate(size)


def progress_bar(enabled: bool, total: int, done: int, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="step", file=sys.stderr, dynamic_ncols=True, desc=desc)


def set_threads(threads: int | None, world: World) -> None:
    """--threads, else the cores shared out among this machine's processes of the run."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world.size) or 1)
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // local))
