"""The one training loop every architecture shares. Read it top to bottom: `train()`.

Fits a recipe on the train split, selects the best epoch on the validation
split (early stopping with patience), and evaluates that best model once on
the test split. A resumable checkpoint (`last.pt`) is written atomically every
`checkpoint_every` steps and at each epoch's end; it holds the model,
optimizer, the weight average (with `train.ema_decay`), epoch/step, RNG state
and running sums, so a run killed at any point and resumed with `--resume` ends
with the same metrics as one that was never interrupted. Ctrl-C (or SIGTERM)
stops at the next step boundary and writes that checkpoint first.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import torch

from zoo import __version__
from zoo.batching import BucketBatchSampler, collate, truncated_lengths
from zoo.config import RunConfig, TrainConfig
from zoo.data import DataSpec, absolute_source
from zoo.encoded import encode_splits
from zoo.errors import CheckpointError, ConfigError, ZooError
from zoo.evaluate import split_logits
from zoo.metrics import classification_metrics
from zoo.faults import failpoint
from zoo.model import build_classifier, count_parameters, verify_encoder
from zoo.report import write_card, write_curves
from zoo.rundir import LAST, METRICS, TOKENIZER, WEIGHTS, RunDir, load_torch, new_run_dir, save_torch
from zoo.tokenizer import tokenizer_for


class Interrupted(ZooError):
    """Training stopped by a signal after writing a resumable checkpoint."""


@dataclass
class TrainRequest:
    config: RunConfig
    data: DataSpec | str | None = None  # a str is a source; --resume takes only a source (the run has the rest)
    out: Path | None = None
    device: str = "auto"
    threads: int | None = None
    max_steps: int | None = None
    progress: bool = False
    resume: Path | None = None
    allow_other_data: bool = False  # resume with data whose fingerprint differs from the run's


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_accuracy: float = -1.0
    best_epoch: int = -1
    bad_epochs: int = 0
    train_seconds: float = 0.0
    tokens: int = 0
    epoch_loss: float = 0.0
    epoch_correct: int = 0
    epoch_seen: int = 0
    metrics_bytes: int = 0
    stopped_early: bool = False  # patience ran out: no more epochs, even after a resume
    finished: bool = False


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


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW; weight decay skips biases, norms and embeddings (1-d and embedding tensors)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or name.startswith("embedding.") else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    return torch.optim.AdamW(groups, lr=config.lr)


def weight_average(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of the weights, its decay warmed up as (1 + n) / (10 + n) after n updates."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
        n = int(updates)
        torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1 + n) / (10 + n)))

    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=update, use_buffers=True)


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


def _append_metric(run: RunDir, record: dict) -> None:
    with open(run.file(METRICS), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, allow_nan=False) + "\n")


def _spec_of(data: DataSpec | str | None) -> DataSpec:
    return data if isinstance(data, DataSpec) else DataSpec(source=data)


def _source_of(data: DataSpec | str | None) -> str | None:
    return data.source if isinstance(data, DataSpec) else data


class NonFiniteError(ZooError):
    """The loss, the gradients or the weights stopped being finite numbers."""


def _require_finite(value: float, what: str, step: int, run: RunDir) -> None:
    if not math.isfinite(value):
        raise NonFiniteError(
            f"training diverged at step {step}: the {what} is {value}. Nothing from this step was saved: "
            f"{run.file(LAST)} holds the last good checkpoint and {run.file(WEIGHTS)} the best epoch so far. "
            "Train again with a lower --lr or --set train.grad_clip=1.0")


def _weights_finite(model: torch.nn.Module) -> float:
    """0.0 when every parameter is finite, else nan (for _require_finite)."""
    return 0.0 if all(bool(torch.isfinite(p).all()) for p in model.parameters()) else math.nan


@dataclass
class Resumed:
    """A run directory to train, with where it stands."""

    run: RunDir
    config: RunConfig
    data: str | None  # a source that replaces the run's recorded one (resume only)
    max_steps: int | None
    checkpoint: dict | None  # None: start at step 0
    progress: Progress


def _read_checkpoint(run: RunDir) -> tuple[dict | None, Progress]:
    """last.pt and its progress; (None, a fresh Progress) when the run was killed before its first checkpoint."""
    if not run.file(LAST).exists():
        return None, Progress()
    checkpoint = load_torch(run.file(LAST))
    try:
        progress = Progress(**checkpoint["progress"])
        for key in ("model", "optimizer", "rng"):
            checkpoint[key]  # noqa: B018 (presence check)
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{run.file(LAST)} is not a zoo training checkpoint ({type(exc).__name__}: {exc}); "
                              "it cannot be resumed") from None
    return checkpoint, progress


def _resumed(request: TrainRequest) -> Resumed:
    run = RunDir.open(request.resume)
    config = run.config()
    info = run.read_info()
    checkpoint, progress = _read_checkpoint(run)
    if progress.finished:
        raise ConfigError(f"{run.path} has finished training; evaluate it with `zoo evaluate {run.path}`")
    run.metrics()  # a corrupt metrics file is an error now, not after the training it would have lost
    metrics = run.file(METRICS)
    if checkpoint is not None and (metrics.stat().st_size if metrics.is_file() else 0) < progress.metrics_bytes:
        raise CheckpointError(f"{run.file(METRICS)} is shorter than {run.file(LAST)} expects: it was truncated, "
                              "and the run's records are lost. Train the run again")
    # the step budget is part of the run (it shapes the LR schedule)
    return Resumed(run, config, _source_of(request.data), info.get("max_steps"),
                   checkpoint, progress)


def _load_data(job: Resumed, request: TrainRequest):
    """The splits, the tokenizer (trained on train only) and the encoded splits; checked against the run's record."""
    run, info = job.run, job.run.read_info()
    splits = run.load_data(job.data, request.allow_other_data)  # the data recorded in config.json
    tokenizer = tokenizer_for(splits, job.config.tokenizer)
    encoded = encode_splits(splits, tokenizer)
    recorded = info.get("tokenizer", {}).get("sha256")
    if recorded is None:  # a new run, or one killed before it got this far
        shutil.copyfile(tokenizer.path, run.file(TOKENIZER))
        run.write_info(info | {
            "data": info["data"] | {
                "source": absolute_source(splits.source), "fingerprint": splits.fingerprint, "classes": splits.classes,
                "columns": list(splits.columns), "own_validation": splits.own_validation,
                "rows": {name: len(split) for name, split in encoded.items()}},
            "tokenizer": {"vocab_size": tokenizer.vocab_size, "sha256": tokenizer.sha256},
        })
    elif tokenizer.sha256 != recorded or run.tokenizer().sha256 != recorded:
        raise CheckpointError(f"the data at {splits.source} gives another tokenizer than {run.file(TOKENIZER)}; "
                              "resume with the run's original --data")
    return encoded, tokenizer


def train(request: TrainRequest, step_callback: Callable[[int], None] | None = None) -> dict:
    """Train, select on validation, evaluate once on test; return the run's summary."""
    device = pick_device(request.device)
    torch.set_num_threads(request.threads or os.cpu_count() or 1)
    if request.resume:
        job = _resumed(request)
    else:
        job = Resumed(new_run_dir(request.out, request.config.recipe), request.config, None,
                      request.max_steps, None, Progress())
    with job.run.lock(fresh=not request.resume):
        if not request.resume:  # written first, so that a run killed at any later point can be resumed
            job.run.write_info({"config": job.config.to_dict(), "seed": job.config.train.seed,
                                "max_steps": job.max_steps, "data": _spec_of(request.data).to_dict(),
                                "created": datetime.now().isoformat(timespec="seconds")})
        return _train(job, request, device, step_callback)


def _train(job: Resumed, request: TrainRequest, device: str, step_callback: Callable[[int], None] | None) -> dict:
    run, config, progress, checkpoint = job.run, job.config, job.progress, job.checkpoint
    tc = config.train
    encoded, tokenizer = _load_data(job, request)
    train_split, validation = encoded["train"], encoded["validation"]

    # --- model, optimizer, sampler -------------------------------------------------------------
    torch.manual_seed(tc.seed)
    classes = run.classes()
    binary = len(classes) == 2
    model = build_classifier(config, tokenizer.vocab_size, len(classes)).to(device)
    optimizer = make_optimizer(model, tc)
    average = weight_average(model, tc.ema_decay) if tc.ema_decay else None
    kept = average.module if average is not None else model  # the weights that are validated, kept and tested
    lengths = truncated_lengths(train_split.lengths, tc.max_tokens)
    sampler = BucketBatchSampler(lengths, tc.batch_size, tc.max_batch_tokens, tc.seed)
    planned = sum(len(sampler.epoch_batches(epoch)) for epoch in range(tc.epochs))  # batch counts vary a little
    total_steps = min(planned, job.max_steps or sys.maxsize)
    if checkpoint is not None:
        try:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            if average is not None:
                average.load_state_dict(checkpoint["average"])
            torch.set_rng_state(checkpoint["rng"]["torch"])
        except (RuntimeError, TypeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{run.file(LAST)} does not fit this run's model ({type(exc).__name__}: {exc}); "
                                  "it cannot be resumed") from None
        if device == "cuda" and "cuda" in checkpoint["rng"]:
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
    with open(run.file(METRICS), "ab") as handle:  # drop records written after the checkpoint
        handle.truncate(progress.metrics_bytes)
    first = collate(train_split, sampler.epoch_batches(min(progress.epoch, tc.epochs - 1))[0], tc.max_tokens)
    verify_encoder(model, torch.from_numpy(first[0]).to(device), torch.from_numpy(first[1]).to(device), config)
    run.write_info(run.read_info() | {
        "parameters": count_parameters(model), "device": device, "threads": torch.get_num_threads(),
        "versions": library_versions()})

    def save_checkpoint() -> None:
        _require_finite(_weights_finite(model), "model's weights", progress.global_step, run)
        progress.metrics_bytes = run.file(METRICS).stat().st_size
        rng = {"torch": torch.get_rng_state()}
        if device == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "progress": asdict(progress), "rng": rng}
        if average is not None:
            state["average"] = average.state_dict()
        save_torch(state, run.file(LAST), failpoint_name="checkpoint-write")

    def validate() -> dict:
        logits = split_logits(kept, validation, device, tc.max_tokens)
        metrics = classification_metrics(logits, validation.labels, classes)
        return {k: metrics[k] for k in ("accuracy", "loss", "macro_f1")}

    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum") if binary else torch.nn.CrossEntropyLoss(reduction="sum")
    bar = _progress_bar(request.progress, total_steps, progress.global_step)
    with StopFlag() as stop:
        while progress.epoch < tc.epochs and progress.global_step < total_steps and not progress.stopped_early:
            batches = sampler.epoch_batches(progress.epoch)
            model.train()
            started = time.perf_counter()
            while progress.step_in_epoch < len(batches) and progress.global_step < total_steps:
                ids, lens, labels = collate(train_split, batches[progress.step_in_epoch], tc.max_tokens)
                ids, lens = torch.from_numpy(ids).to(device), torch.from_numpy(lens).to(device)
                target = torch.from_numpy(labels).to(device, torch.float32 if binary else torch.int64)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(progress.global_step, total_steps, tc)
                with autocast:
                    logits = model(ids, lens).float()
                loss = loss_fn(logits, target)
                loss_value = loss.item()
                _require_finite(loss_value, "loss", progress.global_step + 1, run)
                optimizer.zero_grad(set_to_none=True)
                (loss / len(labels)).backward()
                if tc.grad_clip:
                    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                    _require_finite(float(norm), "gradient norm", progress.global_step + 1, run)
                optimizer.step()
                if average is not None:
                    average.update_parameters(model)

                progress.global_step += 1
                progress.step_in_epoch += 1
                progress.epoch_loss += loss_value
                predicted = (logits > 0).long() if binary else logits.argmax(dim=-1)
                progress.epoch_correct += int((predicted == target.long()).sum())
                progress.epoch_seen += len(labels)
                progress.tokens += int(lens.sum())
                now = time.perf_counter()
                progress.train_seconds += now - started
                started = now
                rate = progress.tokens / max(progress.train_seconds, 1e-9)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=progress.epoch + 1, loss=f"{progress.epoch_loss / progress.epoch_seen:.3f}",
                                    acc=f"{progress.epoch_correct / progress.epoch_seen:.3f}", tok_s=f"{rate:,.0f}")
                if tc.log_every and progress.global_step % tc.log_every == 0:
                    _append_metric(run, {"type": "step", "epoch": progress.epoch + 1, "step": progress.global_step,
                                         "loss": loss_value / len(labels), "lr": optimizer.param_groups[0]["lr"],
                                         "tokens_per_second": rate, "train_seconds": progress.train_seconds})
                if tc.eval_every and progress.global_step % tc.eval_every == 0:
                    _append_metric(run, {"type": "validation", "epoch": progress.epoch + 1, "step": progress.global_step,
                                         "train_seconds": progress.train_seconds, **validate()})
                    model.train()
                    started = time.perf_counter()
                if step_callback is not None:
                    step_callback(progress.global_step)
                if stop.requested:
                    save_checkpoint()
                    raise Interrupted(f"interrupted at step {progress.global_step}; checkpoint saved. "
                                      f"Resume with: zoo train --resume {run.path}")
                if tc.checkpoint_every and progress.global_step % tc.checkpoint_every == 0:
                    save_checkpoint()

            # --- end of epoch (or of the step budget): validate, keep the best, maybe stop ---------
            val = validate()
            improved = val["accuracy"] > progress.best_accuracy
            if improved:
                _require_finite(_weights_finite(kept), "model's weights", progress.global_step, run)
                progress.best_accuracy, progress.best_epoch, progress.bad_epochs = val["accuracy"], progress.epoch + 1, 0
                save_torch(kept.state_dict(), run.file(WEIGHTS))
            else:
                progress.bad_epochs += 1
            failpoint("epoch-end")
            seen = max(progress.epoch_seen, 1)
            _append_metric(run, {
                "type": "epoch", "epoch": progress.epoch + 1, "step": progress.global_step,
                "complete": progress.step_in_epoch >= len(batches),
                "train_loss": progress.epoch_loss / seen, "train_accuracy": progress.epoch_correct / seen,
                "validation_loss": val["loss"], "validation_accuracy": val["accuracy"],
                "train_seconds": progress.train_seconds, "best": improved,
            })
            progress.stopped_early = bool(tc.patience) and progress.bad_epochs >= tc.patience
            progress.epoch += 1
            progress.step_in_epoch = progress.epoch_seen = progress.epoch_correct = 0
            progress.epoch_loss = 0.0
            save_checkpoint()
    if bar is not None:
        bar.close()

    # --- the best model, once, on the test split; the run is finished only once all is written ---
    kept.load_state_dict(load_torch(run.file(WEIGHTS)))
    summary = _test_and_summarize(run, config, kept, encoded.get("test"), classes, progress, device)
    progress.finished = True
    save_checkpoint()
    return summary


def _test_and_summarize(run: RunDir, config: RunConfig, kept: torch.nn.Module, test_split, classes: list[str],
                        progress: Progress, device: str) -> dict:
    """Evaluate the kept weights once on the test split (if the data has one); write curves and card; the summary."""
    test = None
    if test_split is not None:
        logits = split_logits(kept, test_split, device, config.train.max_tokens)
        test = classification_metrics(logits, test_split.labels, classes)
        _append_metric(run, {"type": "test", "epoch": progress.best_epoch, **test})
    failpoint("test-evaluation")
    summary = {
        "run_dir": str(run.path),
        "recipe": config.recipe,
        "architecture": config.architecture,
        "classes": classes,
        "best_validation_accuracy": progress.best_accuracy,
        "best_epoch": progress.best_epoch,
        "test_accuracy": test["accuracy"] if test else None,  # None: the data has no test split
        "test_macro_f1": test["macro_f1"] if test else None,
        "test_loss": test["loss"] if test else None,
        "epochs": progress.epoch,
        "steps": progress.global_step,
        "stopped_early": progress.stopped_early,
        "seconds": round(progress.train_seconds, 2),
        "tokens_per_second": round(progress.tokens / max(progress.train_seconds, 1e-9), 1),
    }
    write_curves(run)
    write_card(run, summary)
    return summary


def _progress_bar(enabled: bool, total: int, done: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="step", file=sys.stderr, dynamic_ncols=True, desc="training")
