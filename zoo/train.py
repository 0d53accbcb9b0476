"""The one training loop every architecture shares. Read it top to bottom: `train()`.

Fits a recipe on the train split, selects the best epoch on the validation
split (early stopping with patience), and evaluates that best model once on
the test split. A resumable checkpoint (`last.pt`) is written atomically every
`checkpoint_every` steps and at each epoch's end; it holds the model,
optimizer, the weight average (with `train.ema_decay`), epoch/step, RNG state
and running sums, so a run killed at any point and resumed with `--resume` ends
with the same metrics as one that was never interrupted. Ctrl-C (or SIGTERM)
stops at the next step boundary and writes that checkpoint first.

`--init-from` starts the embedding and encoder from a `zoo pretrain` run (and
uses its tokenizer); under torchrun each process trains its shard of every
batch (zoo.distributed).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from zoo.batching import BucketBatchSampler, collate, truncated_lengths
from zoo.config import RunConfig, TrainConfig
from zoo.data import DataSpec, absolute_source
from zoo.distributed import World, joined_world
from zoo.encoded import encode_splits
from zoo.errors import CheckpointError, DataError
from zoo.evaluate import split_logits
from zoo.faults import failpoint
from zoo.loop import (Interrupted, Job, StopFlag, append_metric, checkpoint_if_due, first_record, learning_rate,  # noqa: F401
                      log_step, make_optimizer, metrics_truncate, open_job, optimizer_step, pick_device, progress_bar,
                      record_setup, require_finite, restore_training_state, save_training_state, set_learning_rates,
                      set_threads, weights_finite)
from zoo.metrics import classification_metrics
from zoo.model import build_classifier, verify_encoder
from zoo.report import write_card, write_curves
from zoo.rundir import TOKENIZER, WEIGHTS, RunDir, load_torch, save_torch
from zoo.tokenizer import tokenizer_for


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
    init_from: Path | None = None  # a `zoo pretrain` run (or one of its snapshots) to start from


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

    def add_step(self, loss_sum: float, correct: float, seen: float, tokens: float, seconds: float) -> None:
        self.global_step += 1
        self.step_in_epoch += 1
        self.epoch_loss += loss_sum
        self.epoch_correct += int(correct)
        self.epoch_seen += int(seen)
        self.tokens += int(tokens)
        self.train_seconds += seconds

    def next_epoch(self) -> None:
        self.epoch += 1
        self.step_in_epoch = self.epoch_seen = self.epoch_correct = 0
        self.epoch_loss = 0.0


def _spec_of(data: DataSpec | str | None) -> DataSpec:
    return data if isinstance(data, DataSpec) else DataSpec(source=data)


def weight_average(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of the weights, its decay warmed up as (1 + n) / (10 + n) after n updates."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
        n = int(updates)
        torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1 + n) / (10 + n)))

    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def _load_data(job: Job, request: TrainRequest, world: World):
    """The splits, the tokenizer (trained on train only, or the pretrained run's) and the encoded splits; checked
    against the run's record. Rank 0 records them."""
    from zoo.pretrain import check_held_out, pretrained_tokenizer

    run, info = job.run, job.run.read_info()
    # the unlabelled texts are read when the tokenizer learns from them (not when it comes from a pretrain run)
    unlabelled = job.config.tokenizer.use_unsupervised and not info.get("init_from")
    try:
        splits = run.load_data(job.data, request.allow_other_data, with_unsupervised=unlabelled)  # config.json's data
    except DataError as exc:
        if unlabelled and "no 'unsupervised' split" in str(exc):
            raise DataError(f"{exc}; recipe {job.config.recipe!r} reads them (tokenizer.use_unsupervised = true): start "
                            "from a language model with --init-from PRETRAIN_RUN, or add "
                            "--set tokenizer.use_unsupervised=false") from None
        raise
    if info.get("init_from"):
        check_held_out(info["init_from"], splits)
        tokenizer = pretrained_tokenizer(info["init_from"])
    else:
        tokenizer = tokenizer_for(splits, job.config.tokenizer)
    encoded = encode_splits(splits, tokenizer)
    recorded = info.get("tokenizer", {}).get("sha256")
    if recorded is None and world.main:  # a new run, or one killed before it got this far
        shutil.copyfile(tokenizer.path, run.file(TOKENIZER))
        run.write_info(info | {
            "data": info["data"] | {
                "source": absolute_source(splits.source), "fingerprint": splits.fingerprint, "classes": splits.classes,
                "columns": list(splits.columns), "own_validation": splits.own_validation,
                "with_unsupervised": unlabelled,
                "rows": {name: len(split) for name, split in encoded.items()}},
            "tokenizer": {"vocab_size": tokenizer.vocab_size, "sha256": tokenizer.sha256,
                          "segmenter": tokenizer.segmenter.name},
        })
    elif recorded is not None and (tokenizer.sha256 != recorded or run.tokenizer().sha256 != recorded):
        raise CheckpointError(f"the data at {splits.source} gives another tokenizer than {run.file(TOKENIZER)}; "
                              "resume with the run's original --data")
    world.barrier()  # the other ranks read the classes rank 0 recorded
    return encoded, tokenizer


def train(request: TrainRequest, step_callback: Callable[[int], None] | None = None) -> dict:
    """Train, select on validation, evaluate once on test; return the run's summary."""
    device = pick_device(request.device)
    with joined_world(device) as world:
        set_threads(request.threads, world)
        init_from = None
        if request.init_from is not None and not request.resume:
            from zoo.pretrain import pretrained_record

            init_from = pretrained_record(request.init_from, request.config)
        job = open_job(request.resume, request.out, request.config, request.data, request.max_steps, Progress,
                       "train", world)
        with job.run.lock(fresh=not request.resume) if world.main else contextlib.nullcontext():
            if not request.resume and world.main:  # written first, so that a run killed later can be resumed
                first_record(job, _spec_of(request.data).to_dict(), "train", {"init_from": init_from} if init_from else None)
            world.barrier()
            summary = _train(job, request, device, world, step_callback)
            world.barrier()  # every rank done before any tears the group down
            return summary


def _train(job: Job, request: TrainRequest, device: str, world: World,
           step_callback: Callable[[int], None] | None) -> dict:
    run, config, progress, checkpoint = job.run, job.config, job.progress, job.checkpoint
    tc = config.train
    encoded, tokenizer = _load_data(job, request, world)
    train_split, validation = encoded["train"], encoded["validation"]

    # --- model, optimizer, sampler -------------------------------------------------------------
    classes = run.classes()
    binary = len(classes) == 2
    model = _build_model(run, config, tokenizer.vocab_size, len(classes), device, fresh=checkpoint is None)
    optimizer = make_optimizer(model, tc)
    average = weight_average(model, tc.ema_decay) if tc.ema_decay else None
    kept = average.module if average is not None else model  # the weights that are validated, kept and tested
    lengths = truncated_lengths(train_split.lengths, tc.max_tokens)
    sampler = BucketBatchSampler(lengths, tc.batch_size, tc.max_batch_tokens, tc.seed)
    planned = sum(len(sampler.epoch_batches(epoch)) for epoch in range(tc.epochs))  # batch counts vary a little
    total_steps = min(planned, job.max_steps or sys.maxsize)
    parts = {"model": model, "optimizer": optimizer} | ({"average": average} if average is not None else {})
    if checkpoint is not None:
        restore_training_state(checkpoint, parts, run, world, device)
    metrics_truncate(run, world, progress.metrics_bytes)
    first = collate(train_split, sampler.epoch_batches(min(progress.epoch, tc.epochs - 1))[0], tc.max_tokens)
    verify_encoder(model, torch.from_numpy(first[0]).to(device), torch.from_numpy(first[1]).to(device), config)
    record_setup(run, world, model, device)
    net = world.wrap(model, device)  # what the training steps run (DistributedDataParallel under torchrun)

    def save_checkpoint() -> None:
        save_training_state(parts, progress, run, world, device)

    def validate() -> dict:
        logits = split_logits(kept, validation, device, tc.max_tokens, world)  # each rank its share
        metrics = classification_metrics(logits, validation.labels, classes)
        return {k: metrics[k] for k in ("accuracy", "loss", "macro_f1")}

    bar = progress_bar(request.progress and world.main, total_steps, progress.global_step, "training")
    with StopFlag() as stop:
        while progress.epoch < tc.epochs and progress.global_step < total_steps and not progress.stopped_early:
            batches = sampler.epoch_batches(progress.epoch)
            model.train()
            started = time.perf_counter()
            while progress.step_in_epoch < len(batches) and progress.global_step < total_steps:
                batch = batches[progress.step_in_epoch]
                set_learning_rates(optimizer, learning_rate(progress.global_step, total_steps, tc),
                                   progress.global_step, total_steps, tc)
                optimizer.zero_grad(set_to_none=True)
                loss_sum, correct, seen, tokens = world.sum(
                    _classifier_step(net, model.embedding, train_split, batch, world, tc, binary, device))
                optimizer_step(model, optimizer, loss_sum, tc, progress.global_step + 1, run)
                if average is not None:
                    average.update_parameters(model)
                now = time.perf_counter()
                progress.add_step(loss_sum, correct, seen, tokens, now - started)
                started = now
                log_step(run, world, bar, progress, tc, loss_sum / len(batch), optimizer.param_groups[0]["lr"],
                         loss=f"{progress.epoch_loss / progress.epoch_seen:.3f}",
                         acc=f"{progress.epoch_correct / progress.epoch_seen:.3f}")
                if tc.eval_every and progress.global_step % tc.eval_every == 0:
                    append_metric(run, world, {"type": "validation", "epoch": progress.epoch + 1,
                                               "step": progress.global_step, "train_seconds": progress.train_seconds,
                                               **validate()})
                    model.train()
                    started = time.perf_counter()
                if step_callback is not None:
                    step_callback(progress.global_step)
                checkpoint_if_due(stop, progress, tc, save_checkpoint, world, run, "train")

            # --- end of epoch (or of the step budget): validate, keep the best, maybe stop ---------
            _end_epoch(run, world, progress, tc, validate(), kept, complete=progress.step_in_epoch >= len(batches))
            save_checkpoint()
    if bar is not None:
        bar.close()

    # --- the best model, once, on the test split (each rank its share); the run is finished once all is written ---
    kept.load_state_dict(world.broadcast(load_torch(run.file(WEIGHTS)) if world.main else None))
    test_split = encoded.get("test")
    test_logits = None if test_split is None else split_logits(kept, test_split, device, tc.max_tokens, world)
    summary = None
    if world.main:
        summary = _test_and_summarize(run, config, test_logits, test_split, classes, progress, world)
    progress.finished = True
    save_checkpoint()
    return world.broadcast(summary)


def _build_model(run: RunDir, config: RunConfig, vocab_size: int, num_classes: int, device: str,
                 fresh: bool) -> torch.nn.Module:
    """The classifier, seeded; a fresh run with `--init-from` starts its embedding and encoder from the LM."""
    torch.manual_seed(config.train.seed)
    model = build_classifier(config, vocab_size, num_classes).to(device)
    init_from = run.read_info().get("init_from")
    if init_from and fresh:
        from zoo.pretrain import load_pretrained

        load_pretrained(model, init_from)
    return model


def _end_epoch(run: RunDir, world: World, progress: Progress, tc: TrainConfig, val: dict, kept: torch.nn.Module,
               complete: bool) -> None:
    """Keep the weights if validation improved, record the epoch, count patience, move on to the next epoch."""
    improved = val["accuracy"] > progress.best_accuracy
    if improved:
        require_finite(weights_finite(kept), "model's weights", progress.global_step, run)
        progress.best_accuracy, progress.best_epoch, progress.bad_epochs = val["accuracy"], progress.epoch + 1, 0
        if world.main:
            save_torch(kept.state_dict(), run.file(WEIGHTS))
    else:
        progress.bad_epochs += 1
    failpoint("epoch-end")
    seen = max(progress.epoch_seen, 1)
    append_metric(run, world, {
        "type": "epoch", "epoch": progress.epoch + 1, "step": progress.global_step, "complete": complete,
        "train_loss": progress.epoch_loss / seen, "train_accuracy": progress.epoch_correct / seen,
        "validation_loss": val["loss"], "validation_accuracy": val["accuracy"],
        "train_seconds": progress.train_seconds, "best": improved,
    })
    progress.stopped_early = bool(tc.patience) and progress.bad_epochs >= tc.patience
    progress.next_epoch()


def _classifier_step(net: torch.nn.Module, embedding: torch.nn.Embedding, split, batch, world: World,
                     tc: TrainConfig, binary: bool, device: str) -> list[float]:
    """Forward and backward over this rank's rows of a global batch, the loss scaled so that the ranks' averaged
    gradients are the whole batch's mean; this rank's summed loss, correct predictions, rows and tokens.

    With `train.adversarial`, a second forward and backward adds the loss of the same rows with adversarially
    perturbed embeddings (`adversarial_perturbation`)."""
    rows = world.shard(batch)
    ids, lens, labels = collate(split, rows if len(rows) else batch[:1], tc.max_tokens)
    ids, lens = torch.from_numpy(ids).to(device), torch.from_numpy(lens).to(device)
    target = torch.from_numpy(labels).to(device, torch.float32 if binary else torch.int64)
    weight = world.size / len(batch) if len(rows) else 0.0  # a rank without rows adds a zero gradient

    def loss_of(perturbation: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = net(ids, lens, perturbation).float()
        if binary:
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum"), logits
        return torch.nn.functional.cross_entropy(logits, target, reduction="sum"), logits

    if tc.adversarial:
        probe = torch.zeros(*ids.shape, embedding.embedding_dim, device=device, requires_grad=True)
        with world.no_sync(net):  # averaged across ranks together with the adversarial pass's
            loss, logits = loss_of(probe)
            (loss * weight).backward()
        with torch.no_grad():
            perturbation = adversarial_perturbation(embedding(ids), probe.grad, lens, tc.adversarial)
        adversarial_loss, _ = loss_of(perturbation)
        (adversarial_loss * weight).backward()
    else:
        loss, logits = loss_of()
        (loss * weight).backward()
    if not len(rows):
        return [0.0, 0.0, 0.0, 0.0]
    predicted = (logits > 0).long() if binary else logits.argmax(dim=-1)
    return [loss.item(), float((predicted == target.long()).sum()), float(len(labels)), float(lens.sum())]


def adversarial_perturbation(embedded: torch.Tensor, gradient: torch.Tensor, lengths: torch.Tensor,
                             size: float) -> torch.Tensor:
    """Per review, the loss's gradient over its valid steps rescaled to `size` times the L2 norm of its embeddings
    there: the small move of the embeddings that raises the loss most (to first order). Zero where the gradient is."""
    valid = (torch.arange(embedded.shape[1], device=embedded.device)[None, :] < lengths[:, None]).unsqueeze(-1)
    gradient, embedded = gradient * valid, embedded * valid
    scale = size * embedded.flatten(1).norm(dim=1) / gradient.flatten(1).norm(dim=1).clamp_min(1e-12)
    return gradient * scale[:, None, None]


def _test_and_summarize(run: RunDir, config: RunConfig, test_logits: np.ndarray | None, test_split,
                        classes: list[str], progress: Progress, world: World) -> dict:
    """Record the kept weights' test metrics (if the data has a test split); write curves and card; the summary."""
    test = None
    if test_split is not None:
        test = classification_metrics(test_logits, test_split.labels, classes)
        append_metric(run, world, {"type": "test", "epoch": progress.best_epoch, **test})
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
