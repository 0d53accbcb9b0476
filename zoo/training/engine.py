"""The one training engine: what every run shares, whatever it trains. Read it top to bottom: `run_task`, then
`Engine.train`.

The engine owns the processes (zoo.training.world), the run's lock and record,
resume (last.pt, zoo.training.checkpoints), the learning-rate schedule, the step
and time budgets, validation and checkpoint cadence, keeping the best weights,
patience, Ctrl-C / SIGTERM (stop at the next step, checkpoint first), progress
and the final save. A task (zoo.training.classify, zoo.training.language) plugs
in what differs: its data, its model, one step's loss, its validation and its
records. A run killed at any point and resumed ends with the same records and
weights as one never interrupted.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
import time
from dataclasses import replace
from typing import Any, Callable, Protocol

import numpy as np
import torch

from zoo.data.batching import BucketBatchSampler
from zoo.data.tokenizer import Tokenizer
from zoo.errors import CheckpointError
from zoo.faults import failpoint
from zoo.models.build import count_parameters
from zoo.runs.cards import plan_words
from zoo.runs.layout import LAST, TOKENIZER, save_torch
from zoo.runs.loaders import run_tokenizer
from zoo.runs.record import write_record
from zoo.training.checkpoints import restore_checkpoint, save_checkpoint
from zoo.training.job import Job, RunRequest, new_job, resumed_job
from zoo.training.optimizer import learning_rate, optimizer_step, require_finite, set_learning_rates, weights_finite
from zoo.training.progress import Progress
from zoo.training.reporting import Reporter
from zoo.training.session import Interrupted, StopFlag, library_versions, pick_device, set_threads
from zoo.training.world import World, joined_world

SCHEDULE_RESOLUTION = 10_000  # a --budget run's schedule steps through this many fractions of the budget
MAX_EPOCHS = 1_000  # train.min_steps lengthens a run to at most this many epochs


class Share:
    """This process's part of a global batch. `rows` is never empty: a process left without rows (a batch smaller
    than the world) gets the batch's first row and `empty` set, and adds a zero gradient."""

    def __init__(self, batch: np.ndarray, world: World, count: float, net: torch.nn.Module):
        mine = world.shard(batch)
        self.empty = len(mine) == 0
        self.rows = batch[:1] if self.empty else mine
        self.processes, self.count = world.size, count  # the global batch's count of what its loss sums over
        self._world, self._net = world, net

    def no_sync(self):
        """A context whose backward passes accumulate without averaging across processes yet (the next one does)."""
        return self._world.no_sync(self._net)


class Task(Protocol):
    """What differs between runs: set up by the engine, then asked for one step at a time."""

    command: str  # "train" or "pretrain": the run's kind, and the command that resumes it
    weights_file: str  # where the kept weights go (model.pt, lm.pt)
    keeps_at_every_validation: bool  # also keep the best weights at train.eval_every validations
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    sampler: BucketBatchSampler

    def prepare(self) -> tuple[Tokenizer, dict[str, Any]]:
        """Load the data and the tokenizer; what the record should say of the data."""

    def build(self, fresh: bool) -> dict[str, Any]:
        """The model and its optimizer (seeded, checked); the parts a checkpoint holds."""

    def count(self, batch: np.ndarray) -> float:
        """What the global batch's loss sums over (texts, predicted tokens): the loss is divided by it."""

    def step(self, net: torch.nn.Module, share: Share) -> list[float]:
        """Forward and backward over this process's rows: [loss sum, items, correct, tokens] of those rows."""

    def after_update(self) -> None: ...

    def kept(self) -> torch.nn.Module:
        """The weights that are validated, kept and finally used (the model, or its weight average)."""

    def validate(self) -> dict[str, float]: ...

    def score(self, validation: dict[str, float]) -> float:
        """Higher is better: what decides which weights are kept."""

    def shown(self, progress: Progress) -> dict[str, str]:
        """The figures the progress bar shows."""

    def validation_fields(self, validation: dict[str, float], best: bool | None) -> dict[str, Any]: ...

    def epoch_fields(self, progress: Progress, validation: dict[str, float]) -> dict[str, Any]: ...

    def after_step(self, progress: Progress) -> None: ...

    def finish(self, progress: Progress) -> dict | None:
        """After training: the final evaluation, pictures and card; the run's summary (on the writing process)."""


TaskFactory = Callable[[Job, World, str, RunRequest], Task]


def run_task(request: RunRequest, kind: str, make_task: TaskFactory, first_record: dict[str, Any] | None = None,
             on_step: Callable[[int], None] | None = None) -> dict:
    """Train a new run (or resume one) with the task `make_task` builds; return the run's summary.

    `first_record`: what a new run's record says besides the request (a classifier's language model)."""
    device = pick_device(request.device)
    with joined_world(device) as world:
        set_threads(request.threads, world)
        job = resumed_job(request, kind) if request.resume else new_job(request, kind, world, first_record or {})
        with job.run.lock(fresh=not request.resume) if world.main else contextlib.nullcontext():
            if not request.resume and world.main:  # written first, so that a run killed later can be resumed
                write_record(job.run, job.record)
            world.barrier()
            summary = Engine(job, make_task(job, world, device, request), world, device, request, on_step).train()
            world.barrier()  # every rank done before any tears the group down
            return summary


class Engine:
    def __init__(self, job: Job, task: Task, world: World, device: str, request: RunRequest,
                 on_step: Callable[[int], None] | None):
        self.job, self.task, self.world, self.device = job, task, world, device
        self.run, self.progress, self.config = job.run, job.progress, job.record.config.train
        self.on_step = on_step
        self.show = request.progress and world.main

    def train(self) -> dict:
        """Set up, then epochs of steps until the epochs, the steps or the budget run out (or patience), then
        the task's final evaluation; the run is finished once everything is written."""
        progress, task, world = self.progress, self.task, self.world
        self.adopt(*task.prepare())
        self.config = self.job.record.config.train  # the task may have fitted the settings to the data
        self.parts = task.build(self.job.fresh)
        self.epochs, self.total_steps, self.patience = self.plan()
        if self.job.checkpoint is not None:
            restore_checkpoint(self.job.checkpoint, self.parts, self.run, world, self.device)
        if world.main:
            self.run.truncate_metrics(progress.metrics_bytes)
        self.record(setup={"parameters": count_parameters(task.model), "device": self.device,
                           "threads": torch.get_num_threads(), "processes": world.size,
                           "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # kernels' instruction set
                           "versions": library_versions()})
        self.net = world.wrap(task.model, self.device)  # what the steps run (DistributedDataParallel under torchrun)
        self.reporter = Reporter(self.show, self.total_steps, progress, task.command)
        with StopFlag() as stop:
            while not self.done():
                batches = task.sampler.epoch_batches(progress.epoch)
                task.model.train()
                self.started = time.perf_counter()
                while progress.step_in_epoch < len(batches) and not self.out_of_steps():
                    self.step(batches[progress.step_in_epoch], stop)
                self.end_epoch(complete=progress.step_in_epoch >= len(batches))
        self.reporter.close()
        summary = task.finish(progress)
        progress.finished = True
        self.save()
        return world.broadcast(summary)

    def step(self, batch: np.ndarray, stop: StopFlag) -> None:
        """One optimizer step on a global batch, then its bookkeeping: logs, validation, checkpoints."""
        progress, tc, task, world = self.progress, self.config, self.task, self.world
        set_learning_rates(task.optimizer, self.rate(), progress.global_step, self.total_steps, tc)
        task.optimizer.zero_grad(set_to_none=True)
        share = Share(batch, world, task.count(batch), self.net)
        # summed over the processes with the time, so that every process decides alike (budget, stop)
        loss_sum, items, correct, tokens, seconds = world.sum(
            task.step(self.net, share) + [time.perf_counter() - self.started])
        self.started = time.perf_counter()
        optimizer_step(task.model, task.optimizer, loss_sum, tc, progress.global_step + 1, self.saved())
        task.after_update()
        progress.add_step(loss_sum, items, correct, tokens, seconds / world.size)
        self.reporter.step(task.shown(progress))
        if tc.log_every and progress.global_step % tc.log_every == 0:
            self.metric({"type": "step", "epoch": progress.epoch + 1, "step": progress.global_step,
                         "loss": loss_sum / items, "lr": task.optimizer.param_groups[0]["lr"],
                         "tokens_per_second": progress.tokens_per_second, "train_seconds": progress.train_seconds})
        if tc.eval_every and progress.global_step % tc.eval_every == 0:
            validation = self.validate()
            best = self.keep_if_better(validation) if task.keeps_at_every_validation else None
            self.metric({"type": "validation", "epoch": progress.epoch + 1, "step": progress.global_step,
                         "train_seconds": progress.train_seconds, **task.validation_fields(validation, best)})
        task.after_step(progress)
        if self.on_step is not None:
            self.on_step(progress.global_step)
        if world.any(stop.requested):
            self.save()
            raise Interrupted(f"interrupted at step {progress.global_step}; checkpoint saved. "
                              f"Resume with: zoo {task.command} --resume {self.run.path}")
        if tc.checkpoint_every and progress.global_step % tc.checkpoint_every == 0:
            self.save()

    def end_epoch(self, complete: bool) -> None:
        """The end of an epoch (or of the steps or the budget): validate, keep the best, record, count patience."""
        progress = self.progress
        validation = self.validate()
        best = self.keep_if_better(validation)
        if not best:
            progress.bad_epochs += 1
        failpoint("epoch-end")
        self.metric({"type": "epoch", "epoch": progress.epoch + 1, "step": progress.global_step,
                     "complete": complete, **self.task.epoch_fields(progress, validation),
                     "train_seconds": progress.train_seconds, "best": best})
        self.reporter.epoch(self.task.epoch_fields(progress, validation), best)
        progress.stopped_early = bool(self.patience) and progress.bad_epochs >= self.patience
        progress.next_epoch()
        self.save()

    # --- the engine's own decisions -------------------------------------------------------------------------

    def plan(self) -> tuple[int, int, int]:
        """The run's epochs, optimizer steps and patience: train.epochs, or more on small data to reach
        train.min_steps (batch counts vary a little by epoch), with train.patience lengthened alike so that it
        waits as much training as the recipe meant; --max-steps caps the steps. Said on stderr and recorded."""
        tc, sampler = self.config, self.task.sampler
        steps = [len(sampler.epoch_batches(epoch)) for epoch in range(tc.epochs)]
        while tc.min_steps and sum(steps) < tc.min_steps and len(steps) < MAX_EPOCHS:
            steps.append(len(sampler.epoch_batches(len(steps))))
        total = min(sum(steps), self.job.record.max_steps or sys.maxsize)
        plan = {"epochs": len(steps), "steps": total, "steps_per_epoch": round(sum(steps) / len(steps)),
                "patience": math.ceil(tc.patience * len(steps) / tc.epochs), "training_texts": len(sampler.lengths)}
        self.record(setup={"plan": plan})
        if self.job.fresh:
            self.say(f"plan: {plan_words(self.job.record)}")
        return len(steps), total, plan["patience"]

    def out_of_steps(self) -> bool:
        budget = self.job.record.budget_minutes
        return (self.progress.global_step >= self.total_steps
                or (budget is not None and self.progress.train_seconds >= budget * 60))

    def done(self) -> bool:
        return self.progress.epoch >= self.epochs or self.out_of_steps() or self.progress.stopped_early

    def rate(self) -> float:
        """The schedule's learning rate now: by steps, or by the fraction of a --budget spent."""
        budget = self.job.record.budget_minutes
        if budget is None:
            return learning_rate(self.progress.global_step, self.total_steps, self.config)
        spent = min(self.progress.train_seconds / (budget * 60), 1.0)
        return learning_rate(int(spent * SCHEDULE_RESOLUTION), SCHEDULE_RESOLUTION, self.config)

    def validate(self) -> dict[str, float]:
        validation = self.task.validate()
        self.task.model.train()
        self.started = time.perf_counter()
        return validation

    def keep_if_better(self, validation: dict[str, float]) -> bool:
        """Keep the validated weights when their score beats the best so far."""
        score = self.task.score(validation)
        if not score > self.progress.best_score:
            return False
        kept = self.task.kept()
        require_finite(weights_finite(kept), "model's weights", self.progress.global_step, self.saved())
        self.progress.keep(score)
        if self.world.main:
            save_torch(kept.state_dict(), self.run.file(self.task.weights_file))
        return True

    def save(self) -> None:
        """last.pt, when the weights are finite (a collective call: every process makes it)."""
        require_finite(weights_finite(self.task.model), "model's weights", self.progress.global_step, self.saved())
        save_checkpoint(self.parts, self.progress, self.run, self.world, self.device)

    def saved(self) -> str:
        """What a user still has when training diverges (for the error)."""
        return (f"{self.run.file(LAST)} holds the last good checkpoint and {self.run.file(self.task.weights_file)} "
                "the best weights so far")

    def say(self, line: str) -> None:
        """A line for the person running the command (the first process; stderr, so --json stays clean)."""
        if self.world.main and self.show:
            print(line, file=sys.stderr, flush=True)

    def metric(self, record: dict[str, Any]) -> None:
        if self.world.main:
            self.run.append_metric(record)

    # --- the run's record -----------------------------------------------------------------------------------

    def adopt(self, tokenizer: Tokenizer, found: dict[str, Any]) -> None:
        """A new run records its data and tokenizer (and keeps a copy of the tokenizer); a resumed one checks that
        the data gives the tokenizer it was trained with."""
        recorded = self.job.record.tokenizer.get("sha256")
        if recorded is None:  # a new run, or one killed before it got this far
            if self.world.main:
                shutil.copyfile(tokenizer.path, self.run.file(TOKENIZER))
            self.record(data=found, tokenizer={"vocab_size": tokenizer.vocab_size, "sha256": tokenizer.sha256,
                                               "segmenter": tokenizer.segmenter.name})
        elif tokenizer.sha256 != recorded or run_tokenizer(self.run, self.job.record).sha256 != recorded:
            raise CheckpointError(f"the data at {found.get('source')} gives another tokenizer than "
                                  f"{self.run.file(TOKENIZER)}; resume with the run's original --data")
        self.world.barrier()

    def record(self, *, data: dict[str, Any] | None = None, setup: dict[str, Any] | None = None,
               tokenizer: dict[str, Any] | None = None) -> None:
        """Add what the run learned to its record (every process holds it), and write it (the first process)."""
        record = self.job.record
        self.job.record = replace(record, data=record.data | (data or {}), setup=record.setup | (setup or {}),
                                  tokenizer=tokenizer or record.tokenizer)
        if self.world.main:
            write_record(self.run, self.job.record)
