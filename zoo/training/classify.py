"""`zoo train`: the classification task the engine (zoo.training.engine) runs. Read `train`, then `Classification`.

The task fits a recipe on the train split, keeps the epoch with the best
validation accuracy (patience may stop early), and evaluates those weights once
on the test split. Its step is the cross-entropy of the texts' logits; with
`train.adversarial` a second forward and backward adds the loss of the same
texts with adversarially perturbed embeddings (Miyato et al. 2017). With
`train.ema_decay` the weights validated, kept and tested are a moving average.
`--init-from` starts the embedding and encoder from a language model
(zoo.training.finetune).
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np
import torch

from zoo.data.batching import BucketBatchSampler, collate, truncated_lengths
from zoo.data.encoding import encode_splits
from zoo.data.sources import absolute_source
from zoo.data.splits import Splits
from zoo.data.tokenizer import Tokenizer, tokenizer_for
from zoo.errors import DataError
from zoo.faults import failpoint
from zoo.inference.logits import split_logits
from zoo.inference.metrics import classification_metrics
from zoo.models.build import build_classifier, verify_encoder
from zoo.runs.layout import WEIGHTS, load_torch
from zoo.runs.loaders import run_data
from zoo.training import finetune
from zoo.training.engine import Share, run_task
from zoo.training.fit import fit_to_texts
from zoo.training.job import Job, RunRequest
from zoo.training.optimizer import make_optimizer, weight_average
from zoo.training.progress import Progress
from zoo.training.world import World


def train(request: RunRequest, step_callback: Callable[[int], None] | None = None) -> dict:
    """Train a classifier, select on validation, evaluate once on test; the run's summary."""
    first_record = None
    if request.init_from is not None and not request.resume:
        first_record = {"init_from": finetune.pretrained_record(request.init_from, request.config)}
    return run_task(request, "train", Classification, first_record, step_callback)


class Classification:
    command, weights_file, keeps_at_every_validation = "train", WEIGHTS, False

    def __init__(self, job: Job, world: World, device: str, request: RunRequest):
        self.job, self.world, self.device, self.request = job, world, device, request
        self.config = job.record.config
        self.classes = job.record.classes
        self.binary = len(self.classes) == 2

    # --- set up ---------------------------------------------------------------------------------------------

    def prepare(self) -> tuple[Tokenizer, dict[str, Any]]:
        """The splits, the tokenizer (trained on train only, or the language model's) and the encoded splits."""
        record = self.job.record
        init_from = record.init_from
        # the unlabelled texts are read when the tokenizer learns from them (not when it comes from a pretrain run)
        unlabelled = self.config.tokenizer.use_unsupervised and not init_from
        splits = self._splits(unlabelled)
        line = fit_to_texts(record, splits.train["text"])  # may change the run's settings, before any are used
        self.config = record.config
        if line and self.request.progress and self.world.main:
            print(line, file=sys.stderr, flush=True)
        if init_from:
            finetune.check_held_out(init_from, splits)
            tokenizer = finetune.pretrained_tokenizer(init_from)
        else:
            tokenizer = tokenizer_for(splits, self.config.tokenizer)
        self.tokenizer, self.encoded = tokenizer, encode_splits(splits, tokenizer)
        self.classes = splits.classes
        self.binary = len(self.classes) == 2
        return tokenizer, {
            "source": absolute_source(splits.source), "fingerprint": splits.fingerprint, "classes": splits.classes,
            "columns": list(splits.columns), "own_validation": splits.own_validation, "with_unsupervised": unlabelled,
            "rows": {name: len(split) for name, split in self.encoded.items()}}

    def _splits(self, unlabelled: bool) -> Splits:
        try:
            return run_data(self.job.run, self.job.record, self.job.data, self.request.allow_other_data,
                            with_unsupervised=unlabelled)
        except DataError as exc:
            if unlabelled and "no 'unsupervised' split" in str(exc):
                raise DataError(f"{exc}; recipe {self.config.recipe!r} reads them (tokenizer.use_unsupervised = true): "
                                "start from a language model with --init-from PRETRAIN_RUN, or add "
                                "--set tokenizer.use_unsupervised=false") from None
            raise

    def build(self, fresh: bool) -> dict[str, Any]:
        """The classifier (seeded; a fresh run with --init-from starts from the language model), its optimizer,
        its weight average, and the batches; the encoder is checked on the first real batch."""
        tc = self.config.train
        torch.manual_seed(tc.seed)
        self.model = build_classifier(self.config, self.tokenizer.vocab_size, len(self.classes)).to(self.device)
        if fresh and self.job.record.init_from:
            finetune.load_pretrained(self.model, self.job.record.init_from)
        self.optimizer = make_optimizer(self.model, tc)
        self.average = weight_average(self.model, tc.ema_decay) if tc.ema_decay else None
        self.train_split, self.validation = self.encoded["train"], self.encoded["validation"]
        lengths = truncated_lengths(self.train_split.lengths, tc.max_tokens)
        self.sampler = BucketBatchSampler(lengths, tc.batch_size, tc.max_batch_tokens, tc.seed)
        ids, lens, _ = collate(self.train_split, self.sampler.epoch_batches(0)[0], tc.max_tokens)
        verify_encoder(self.model, torch.from_numpy(ids).to(self.device), torch.from_numpy(lens).to(self.device),
                       self.config)
        return {"model": self.model, "optimizer": self.optimizer} | ({"average": self.average} if self.average else {})

    # --- training -------------------------------------------------------------------------------------------

    def count(self, batch: np.ndarray) -> float:
        return len(batch)

    def step(self, net: torch.nn.Module, share: Share) -> list[float]:
        """Forward and backward over this process's rows, the loss scaled so that the processes' averaged
        gradients are the whole batch's mean; [summed loss, rows, correct predictions, tokens] of those rows."""
        tc = self.config.train
        ids, lens, labels = collate(self.train_split, share.rows, tc.max_tokens)
        ids, lens = torch.from_numpy(ids).to(self.device), torch.from_numpy(lens).to(self.device)
        target = torch.from_numpy(labels).to(self.device, torch.float32 if self.binary else torch.int64)
        weight = 0.0 if share.empty else share.processes / share.count  # a process without rows adds a zero gradient

        def loss_of(perturbation: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device == "cuda"):
                logits = net(ids, lens, perturbation).float()
            if self.binary:
                return torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum"), logits
            return torch.nn.functional.cross_entropy(logits, target, reduction="sum"), logits

        if tc.adversarial:
            probe = torch.zeros(*ids.shape, self.model.embedding.embedding_dim, device=self.device, requires_grad=True)
            with share.no_sync():  # averaged across processes together with the adversarial pass's
                loss, logits = loss_of(probe)
                (loss * weight).backward()
            with torch.no_grad():
                perturbation = adversarial_perturbation(self.model.embedding(ids), probe.grad, lens, tc.adversarial)
            adversarial_loss, _ = loss_of(perturbation)
            (adversarial_loss * weight).backward()
        else:
            loss, logits = loss_of()
            (loss * weight).backward()
        if share.empty:
            return [0.0, 0.0, 0.0, 0.0]
        predicted = (logits > 0).long() if self.binary else logits.argmax(dim=-1)
        return [loss.item(), float(len(labels)), float((predicted == target.long()).sum()), float(lens.sum())]

    def after_update(self) -> None:
        if self.average is not None:
            self.average.update_parameters(self.model)

    def kept(self) -> torch.nn.Module:
        return self.average.module if self.average is not None else self.model

    def after_step(self, progress: Progress) -> None:
        pass

    # --- validation and records -----------------------------------------------------------------------------

    def validate(self) -> dict[str, float]:
        """Accuracy, loss and macro-F1 of the kept weights on the validation split (each process its share)."""
        logits = split_logits(self.kept(), self.validation, self.device, self.config.train.max_tokens, self.world)
        metrics = classification_metrics(logits, self.validation.labels, self.classes)
        return {k: metrics[k] for k in ("accuracy", "loss", "macro_f1")}

    def score(self, validation: dict[str, float]) -> float:
        return validation["accuracy"]

    def shown(self, progress: Progress) -> dict[str, str]:
        return {"loss": f"{progress.epoch_loss / progress.epoch_items:.3f}",
                "acc": f"{progress.epoch_correct / progress.epoch_items:.3f}"}

    def validation_fields(self, validation: dict[str, float], best: bool | None) -> dict[str, Any]:
        return validation

    def epoch_fields(self, progress: Progress, validation: dict[str, float]) -> dict[str, Any]:
        seen = max(progress.epoch_items, 1)
        return {"train_loss": progress.epoch_loss / seen, "train_accuracy": progress.epoch_correct / seen,
                "validation_loss": validation["loss"], "validation_accuracy": validation["accuracy"]}

    # --- the end --------------------------------------------------------------------------------------------

    def finish(self, progress: Progress) -> dict | None:
        """The kept weights, once, on the test split (each process its share); the test record, the curves, the
        card and the summary (written by the first process)."""
        from zoo.runs.cards import write_card
        from zoo.runs.pictures import write_curves

        run, kept, world = self.job.run, self.kept(), self.world
        kept.load_state_dict(world.broadcast(load_torch(run.file(WEIGHTS)) if world.main else None))
        test_split = self.encoded.get("test")
        test_logits = None if test_split is None else split_logits(kept, test_split, self.device,
                                                                     self.config.train.max_tokens, world)
        if not world.main:
            return None
        test = None
        if test_split is not None:
            test = classification_metrics(test_logits, test_split.labels, self.classes)
            run.append_metric({"type": "test", "epoch": progress.best_epoch, **test})
        failpoint("test-evaluation")
        summary = self.summary(progress, test) | {"notes": fit_notes(run.metrics(), progress, self.job.record)}
        for note in summary["notes"]:
            print(f"note: {note}", file=sys.stderr)
        write_curves(run)
        write_card(run, self.job.record, summary)
        return summary

    def summary(self, progress: Progress, test: dict | None) -> dict:
        return {
            "run_dir": str(self.job.run.path),
            "recipe": self.config.recipe,
            "architecture": self.config.architecture,
            "classes": self.classes,
            "best_validation_accuracy": progress.best_score,
            "best_epoch": progress.best_epoch,
            "test_accuracy": test["accuracy"] if test else None,  # None: the data has no test split
            "test_macro_f1": test["macro_f1"] if test else None,
            "test_loss": test["loss"] if test else None,
            "epochs": progress.epoch,
            "steps": progress.global_step,
            "stopped_early": progress.stopped_early,
            "seconds": round(progress.train_seconds, 2),
            "tokens_per_second": round(progress.tokens_per_second, 1),
        }


OVERFIT_GAP = 0.10  # training accuracy this far above validation accuracy at the best epoch is worth a note


def fit_notes(records: list[dict], progress: Progress, record) -> list[str]:
    """One line each when the run looks undertrained (validation still improving at its last epoch) or overfit
    (training accuracy far above validation accuracy at the best epoch), with the setting to change."""
    epochs = [r for r in records if r.get("type") == "epoch"]
    if not epochs:
        return []
    notes, last = [], epochs[-1]
    plan = record.setup.get("plan", {})
    if last.get("best") and last.get("complete") and not progress.stopped_early and len(epochs) > 1:
        steps = 2 * plan.get("steps", progress.global_step)
        notes.append(f"validation accuracy was still improving at the last epoch ({last['validation_accuracy']:.4f} "
                     f"at epoch {last['epoch']}): the run may be undertrained; train longer with "
                     f"--set train.min_steps={steps} (or --epochs {2 * last['epoch']})")
    best = next((r for r in epochs if r["epoch"] == progress.best_epoch), None)
    if best and best["train_accuracy"] - best["validation_accuracy"] > OVERFIT_GAP:
        notes.append(f"at the best epoch ({best['epoch']}) the model was right on {best['train_accuracy']:.1%} of its "
                     f"training texts but {best['validation_accuracy']:.1%} of the validation texts: it may overfit; "
                     f"try {_less_capacity(record.config)}")
    return notes


def _less_capacity(config) -> str:
    """Settings with more dropout than `config` has, or a smaller encoder, as --set options."""
    c = config.classifier
    more = (f"more dropout (--set classifier.embedding_dropout={min(c.embedding_dropout + 0.2, 0.8):g} "
            f"--set classifier.word_dropout={min(c.word_dropout + 0.1, 0.5):g})")
    hidden = getattr(config.encoder, "hidden_size", None)
    return more + (f" or a smaller encoder (--set encoder.hidden_size={hidden // 2})" if hidden and hidden > 1 else "")


def adversarial_perturbation(embedded: torch.Tensor, gradient: torch.Tensor, lengths: torch.Tensor,
                             size: float) -> torch.Tensor:
    """Per text, the loss's gradient over its valid steps rescaled to `size` times the L2 norm of its embeddings
    there: the small move of the embeddings that raises the loss most (to first order). Zero where the gradient is."""
    from zoo.plugin_api.sequences import step_mask

    valid = step_mask(lengths, embedded.shape[1]).unsqueeze(-1)
    gradient, embedded = gradient * valid, embedded * valid
    scale = size * embedded.flatten(1).norm(dim=1) / gradient.flatten(1).norm(dim=1).clamp_min(1e-12)
    return gradient * scale[:, None, None]
