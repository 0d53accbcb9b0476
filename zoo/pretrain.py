"""`zoo pretrain`: an architecture's encoder trained as a language model on the train split plus the unlabelled texts.

Read it top to bottom: `pretrain()`. The data is the train split (the texts
only, never validation or test) and the `unsupervised` split when the data has
one, less any unlabelled text that repeats a validation or test text; the
tokenizer is trained on those same texts, and `texts.npy` lists their digests so
that a fine-tuning run on other data can check it is not evaluated on them.
Texts are cut into chunks of `pretrain.chunk_tokens` and batched by length like
`zoo train`'s reviews (the encoder contract takes no initial state, so every
chunk is read from its start and padding stays exact). Validation perplexity
(full softmax) on the first `pretrain.eval_texts` validation texts picks the
kept weights (`lm.pt`).

The run directory is resumable exactly like a `zoo train` run (`last.pt`,
`--resume`), stops at `--max-steps` or a `--budget` of training minutes (the
learning-rate schedule then runs on the fraction of the budget spent), and can
keep snapshots every `pretrain.snapshot_minutes` for accuracy-vs-minutes curves.
`zoo train NAME --init-from RUN` starts a classifier from it (functions at the
bottom of this module).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from zoo.batching import BucketBatchSampler, collate, evaluation_batches
from zoo.config import RunConfig
from zoo.data import DataSpec, Splits, absolute_source, text_digests
from zoo.distributed import World, joined_world
from zoo.encoded import encode_splits
from zoo.errors import CheckpointError, ConfigError, DataError
from zoo.faults import failpoint
from zoo.files import atomic_write
from zoo.language_model import (LanguageModel, SampledSoftmax, build_language_model, chunked, perplexity,
                                token_counts, verify_causal)
from zoo.loop import (Job, StopFlag, append_metric, checkpoint_if_due, first_record, learning_rate, log_step,
                      make_optimizer, metrics_truncate, open_job, optimizer_step, pick_device, progress_bar,
                      record_setup, require_finite, restore_training_state, save_training_state, set_learning_rates,
                      set_threads, weights_finite)
from zoo.model import origin
from zoo.rundir import TOKENIZER, RunDir, load_torch, save_torch
from zoo.tokenizer import tokenizer_for

LM_WEIGHTS = "lm.pt"  # the kept (best validation perplexity) language model
LM_TEXTS = "texts.npy"  # digests of the texts the language model learned from (zoo.data.text_digests)
SNAPSHOTS = "snapshots"
KIND = "pretrain"
SCHEDULE_RESOLUTION = 10_000  # a --budget run's schedule steps through this many fractions of the budget


@dataclass
class PretrainRequest:
    config: RunConfig
    data: DataSpec | str | None = None
    out: Path | None = None
    device: str = "auto"
    threads: int | None = None
    max_steps: int | None = None
    budget_minutes: float | None = None
    progress: bool = False
    resume: Path | None = None
    allow_other_data: bool = False


@dataclass
class LMProgress:
    """Where pretraining stands; saved in every checkpoint."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    train_seconds: float = 0.0
    tokens: int = 0  # input tokens read
    epoch_loss: float = 0.0  # summed training loss (sampled softmax) ...
    epoch_predictions: int = 0  # ... over this many predicted tokens
    best_loss: float = float("inf")  # validation loss per token (full softmax)
    best_step: int = -1
    snapshots: int = 0
    metrics_bytes: int = 0
    finished: bool = False

    def add_step(self, loss_sum: float, predictions: int, tokens: float, seconds: float) -> None:
        self.global_step += 1
        self.step_in_epoch += 1
        self.epoch_loss += loss_sum
        self.epoch_predictions += predictions
        self.tokens += int(tokens)
        self.train_seconds += seconds

    def next_epoch(self) -> None:
        self.epoch += 1
        self.step_in_epoch = self.epoch_predictions = 0
        self.epoch_loss = 0.0


def pretrain(request: PretrainRequest) -> dict:
    """Train the language model, keep the weights with the best validation perplexity; return a summary."""
    device = pick_device(request.device)
    with joined_world(device) as world:
        set_threads(request.threads, world)
        job = open_job(request.resume, request.out, request.config, request.data, request.max_steps, LMProgress,
                       KIND, world)
        with job.run.lock(fresh=not request.resume) if world.main else contextlib.nullcontext():
            if not request.resume and world.main:
                spec = request.data if isinstance(request.data, DataSpec) else DataSpec(source=request.data)
                first_record(job, spec.to_dict(), KIND, {"budget_minutes": request.budget_minutes})
            world.barrier()
            summary = _pretrain(job, request, device, world)
            world.barrier()  # every rank done before any tears the group down
            return summary


def _load_texts(job: Job, request: PretrainRequest, world: World):
    """The language model's training chunks, its validation chunks and the tokenizer (train + unsupervised)."""
    run, info = job.run, job.run.read_info()
    try:
        splits = run.load_data(job.data, request.allow_other_data, with_unsupervised=True)
        names = ("train", "unsupervised", "validation")
    except DataError as exc:
        if "no 'unsupervised' split" not in str(exc):
            raise
        print(f"note: {exc}; pretraining on the train split's texts alone", file=sys.stderr)
        splits = run.load_data(job.data, request.allow_other_data)
        names = ("train", "validation")
    if splits.held_out_unsupervised:
        print(f"note: left out {splits.held_out_unsupervised:,} unlabelled texts that repeat a validation or test text",
              file=sys.stderr)
    tokenizer_config = job.config.tokenizer
    tokenizer_config.use_unsupervised = splits.unsupervised is not None
    tokenizer = tokenizer_for(splits, tokenizer_config)
    encoded = encode_splits(splits, tokenizer, names)
    pc = job.config.pretrain
    texts = chunked([encoded[n] for n in names if n != "validation"], pc.chunk_tokens)
    validation = encoded["validation"]
    if pc.eval_texts and pc.eval_texts < len(validation):
        validation = chunked([type(validation)("validation", validation.tokens, validation.offsets[:pc.eval_texts + 1],
                                                validation.labels[:pc.eval_texts])], pc.chunk_tokens, "validation")
    else:
        validation = chunked([validation], pc.chunk_tokens, "validation")
    recorded = info.get("tokenizer", {}).get("sha256")
    if recorded is None and world.main:
        shutil.copyfile(tokenizer.path, run.file(TOKENIZER))
        learned = text_digests([text for name in names if name != "validation" for text in splits.named()[name]["text"]])
        atomic_write(run.file(LM_TEXTS), lambda f: np.save(f, learned, allow_pickle=False))
        run.write_info(info | {
            "config": job.config.to_dict(),
            "data": info["data"] | {"source": absolute_source(splits.source), "fingerprint": splits.fingerprint,
                                    "with_unsupervised": splits.unsupervised is not None,
                                    "held_out_unsupervised": splits.held_out_unsupervised,
                                    "texts": {n: len(encoded[n]) for n in names if n != "validation"},
                                    "validation_texts": min(len(encoded["validation"]), pc.eval_texts or sys.maxsize),
                                    "chunks": {"train": len(texts), "validation": len(validation)}},
            "tokenizer": {"vocab_size": tokenizer.vocab_size, "sha256": tokenizer.sha256,
                          "segmenter": tokenizer.segmenter.name},
        })
    elif recorded is not None and (tokenizer.sha256 != recorded or run.tokenizer().sha256 != recorded):
        raise CheckpointError(f"the data at {splits.source} gives another tokenizer than {run.file(TOKENIZER)}; "
                              "resume with the run's original --data")
    world.barrier()
    return texts, validation, tokenizer


def _pretrain(job: Job, request: PretrainRequest, device: str, world: World) -> dict:
    run, config, progress, checkpoint = job.run, job.config, job.progress, job.checkpoint
    tc, pc = config.train, config.pretrain
    budget = job.run.read_info().get("budget_minutes")
    texts, validation, tokenizer = _load_texts(job, request, world)

    torch.manual_seed(tc.seed)
    model = build_language_model(config, tokenizer.vocab_size).to(device)
    verify_causal(model, origin(config.architecture))
    optimizer = make_optimizer(model, tc)
    sampled = SampledSoftmax(token_counts(texts, tokenizer.vocab_size), pc.samples, device)
    chunk_lengths = texts.lengths  # a property that diffs every offset: computed once, not per step
    sampler = BucketBatchSampler(chunk_lengths, tc.batch_size, tc.max_batch_tokens, tc.seed)
    planned = sum(len(sampler.epoch_batches(epoch)) for epoch in range(tc.epochs))
    total_steps = min(planned, job.max_steps or sys.maxsize)
    parts = {"model": model, "optimizer": optimizer}
    if checkpoint is not None:
        restore_training_state(checkpoint, parts, run, world, device)
    metrics_truncate(run, world, progress.metrics_bytes)
    record_setup(run, world, model, device)
    net = world.wrap(model, device)
    directions = 2 if model.bidirectional else 1

    def out_of_budget() -> bool:
        return budget is not None and progress.train_seconds >= budget * 60

    def schedule_rate() -> float:
        if budget is None:
            return learning_rate(progress.global_step, total_steps, tc)
        spent = min(progress.train_seconds / (budget * 60), 1.0)
        return learning_rate(int(spent * SCHEDULE_RESOLUTION), SCHEDULE_RESOLUTION, tc)

    def save_checkpoint() -> None:
        save_training_state(parts, progress, run, world, device)

    def validate() -> dict:
        loss = validation_loss(model, validation, tc.max_batch_tokens or 32768, device, world)
        model.train()
        return {"loss": loss, "perplexity": perplexity(loss)}

    def keep_if_best(val: dict) -> bool:
        if val["loss"] >= progress.best_loss:
            return False
        require_finite(weights_finite(model), "model's weights", progress.global_step, run)
        progress.best_loss, progress.best_step = val["loss"], progress.global_step
        if world.main:
            save_torch(model.state_dict(), run.file(LM_WEIGHTS))
        return True

    bar = progress_bar(request.progress and world.main, total_steps, progress.global_step, "pretraining")
    with StopFlag() as stop:
        while progress.epoch < tc.epochs and progress.global_step < total_steps and not out_of_budget():
            batches = sampler.epoch_batches(progress.epoch)
            model.train()
            started = time.perf_counter()
            while progress.step_in_epoch < len(batches) and progress.global_step < total_steps and not out_of_budget():
                batch = batches[progress.step_in_epoch]
                predictions = directions * int((chunk_lengths[batch] - 1).sum())  # the global batch's count
                set_learning_rates(optimizer, schedule_rate(), progress.global_step, total_steps, tc)
                optimizer.zero_grad(set_to_none=True)
                loss_sum, tokens = _lm_step(net, model, sampled, texts, batch, predictions, world, device)
                loss_sum, tokens, seconds = world.sum([loss_sum, tokens, time.perf_counter() - started])
                optimizer_step(model, optimizer, loss_sum, tc, progress.global_step + 1, run)
                # the ranks' mean time: every rank decides alike when the budget is spent
                progress.add_step(loss_sum, predictions, tokens, seconds / world.size)
                started = time.perf_counter()
                log_step(run, world, bar, progress, tc, loss_sum / predictions, optimizer.param_groups[0]["lr"],
                         ppl=f"{perplexity(progress.epoch_loss / progress.epoch_predictions):,.1f}")
                if tc.eval_every and progress.global_step % tc.eval_every == 0:
                    val = validate()
                    append_metric(run, world, {"type": "validation", "epoch": progress.epoch + 1,
                                               "step": progress.global_step, "train_seconds": progress.train_seconds,
                                               "best": keep_if_best(val), **val})
                    started = time.perf_counter()
                if pc.snapshot_minutes and progress.train_seconds >= (progress.snapshots + 1) * pc.snapshot_minutes * 60:
                    progress.snapshots += 1
                    _snapshot(run, world, model, progress)
                checkpoint_if_due(stop, progress, tc, save_checkpoint, world, run, "pretrain")

            # --- end of an epoch, of the steps or of the budget: validate, keep the best ---------------
            val = validate()
            complete = progress.step_in_epoch >= len(batches)
            _record_epoch(run, world, progress, val, best=keep_if_best(val), complete=complete)
            if complete:
                progress.next_epoch()
            save_checkpoint()
    if bar is not None:
        bar.close()

    summary = _summarize(run, config, progress) if world.main else None
    progress.finished = True
    save_checkpoint()
    return world.broadcast(summary)


def _summarize(run: RunDir, config: RunConfig, progress: LMProgress) -> dict:
    """The run's summary; its curves and card written (rank 0)."""
    from zoo.report import write_pretrain_card, write_pretrain_curves

    summary = {
        "run_dir": str(run.path), "recipe": config.recipe, "architecture": config.architecture,
        "best_validation_perplexity": perplexity(progress.best_loss), "best_step": progress.best_step,
        "epochs": progress.epoch, "steps": progress.global_step, "seconds": round(progress.train_seconds, 2),
        "tokens_per_second": round(progress.tokens / max(progress.train_seconds, 1e-9), 1),
        "snapshots": sorted(p.name for p in run.file(SNAPSHOTS).glob("*.pt")),
    }
    write_pretrain_curves(run)
    write_pretrain_card(run, summary)
    return summary


def _record_epoch(run: RunDir, world: World, progress: LMProgress, val: dict, best: bool, complete: bool) -> None:
    """The `epoch` record: training and validation perplexity at the end of an epoch, of the steps or of the budget."""
    failpoint("epoch-end")
    train_loss = progress.epoch_loss / max(progress.epoch_predictions, 1)
    append_metric(run, world, {
        "type": "epoch", "epoch": progress.epoch + 1, "step": progress.global_step, "complete": complete,
        "train_loss": train_loss, "train_perplexity": perplexity(train_loss), "validation_loss": val["loss"],
        "validation_perplexity": val["perplexity"], "train_seconds": progress.train_seconds, "best": best})


def _lm_step(net: torch.nn.Module, model: LanguageModel, sampled: SampledSoftmax, texts, batch, predictions: int,
             world: World, device: str) -> tuple[float, float]:
    """Forward and backward over this rank's rows of a global batch (loss scaled to the whole batch's mean over
    its `predictions`); this rank's summed loss and input tokens."""
    rows = world.shard(batch)
    ids, lens, _ = collate(texts, rows if len(rows) else batch[:1])
    ids, lens = torch.from_numpy(ids).to(device), torch.from_numpy(lens).to(device)
    loss = sum(sampled.loss(model, features, targets) for features, targets in net(ids, lens))
    if not len(rows):  # a rank without rows (a batch smaller than the world) adds a zero gradient
        (loss * 0.0).backward()
        return 0.0, 0.0
    (loss * world.size / predictions).backward()
    return loss.item(), float(lens.sum())


def _snapshot(run: RunDir, world: World, model: LanguageModel, progress: LMProgress) -> None:
    """The current weights as snapshots/minutes-M-step-N.pt (a starting point for `zoo train --init-from`)."""
    if not world.main:
        return
    minutes = progress.train_seconds / 60
    path = run.file(SNAPSHOTS) / f"minutes-{minutes:07.2f}-step-{progress.global_step}.pt"
    path.parent.mkdir(exist_ok=True)
    save_torch(model.state_dict(), path)
    append_metric(run, world, {"type": "snapshot", "step": progress.global_step, "minutes": round(minutes, 2),
                               "file": f"{SNAPSHOTS}/{path.name}"})


@torch.no_grad()
def validation_loss(model: LanguageModel, split, max_batch_tokens: int, device: str, world: World) -> float:
    """Full-softmax cross-entropy per predicted token over the split (each rank its share of the batches)."""
    model.eval()
    total, count = 0.0, 0
    for batch in world.shard(evaluation_batches(split.lengths, 256, max_batch_tokens)):
        ids, lens, _ = collate(split, batch)
        for features, targets in model(torch.from_numpy(ids).to(device), torch.from_numpy(lens).to(device)):
            total += float(model.full_loss(features, targets))
            count += len(targets)
    total, count = world.sum([total, float(count)])
    return total / max(count, 1)


# --- starting `zoo train` from a pretrain run ------------------------------------------------------------------


def pretrained_record(path: Path, config: RunConfig) -> dict:
    """What config.json records of `--init-from PATH`: a pretrain run dir (its lm.pt) or one of its snapshots.

    The classifier's architecture, encoder hyperparameters and embedding size must be the language model's.
    """
    path = Path(path)
    weights = path / LM_WEIGHTS if path.is_dir() else path
    folder = path if path.is_dir() else (path.parent.parent if path.parent.name == SNAPSHOTS else path.parent)
    if not (folder / "config.json").is_file() or RunDir(folder).read_info().get("kind") != KIND:
        raise ConfigError(f"--init-from {path}: not a `zoo pretrain` run directory (or a snapshot inside one)")
    run = RunDir(folder)
    if not weights.is_file():
        raise ConfigError(f"--init-from {path}: {weights} does not exist yet (the run has not finished a "
                          "validation); wait for it, or name one of its snapshots")
    pretrained = run.config()
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
            "tokenizer_sha256": run.tokenizer().sha256}


def pretrained_tokenizer(record: dict):
    """The pretrain run's tokenizer (the classifier reads text exactly as the language model did)."""
    tokenizer = RunDir(Path(record["run"])).tokenizer()
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
