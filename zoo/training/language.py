"""`zoo pretrain`: the language-model task the engine (zoo.training.engine) runs. Read `pretrain`, then
`LanguageModelling`.

The data is the train split (the texts only, never validation or test) and the
`unsupervised` split when the data has one, less any unlabelled text that
repeats a validation or test text; the tokenizer is trained on those same texts,
and `texts.npy` lists their digests so that a fine-tuning run on other data can
check it is not evaluated on them (zoo.training.finetune). Texts are cut into
chunks of `pretrain.chunk_tokens` and batched by length like `zoo train`'s (the
encoder contract takes no initial state, so every chunk is read from its start
and padding stays exact). The step is the sampled (or full) softmax loss of
each next token, and of each previous one for a bidirectional encoder.
Validation perplexity (full softmax) on the first `pretrain.eval_texts`
validation texts picks the kept weights (`lm.pt`), at every validation.
`pretrain.snapshot_minutes` keeps snapshots for accuracy-vs-minutes curves.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch

from zoo.data.batching import BucketBatchSampler, collate, evaluation_batches
from zoo.data.encoding import EncodedSplit, chunk_texts, encode_splits
from zoo.data.sources import absolute_source
from zoo.data.splits import Splits
from zoo.data.text import text_digests
from zoo.data.tokenizer import Tokenizer, tokenizer_for
from zoo.errors import DataError
from zoo.files import atomic_write
from zoo.models.build import build_language_model, origin
from zoo.models.language_model import (
    FullSoftmax,
    LanguageModel,
    SampledSoftmax,
    perplexity,
    token_counts,
    verify_causal,
)
from zoo.runs.layout import LM_TEXTS, LM_WEIGHTS, SNAPSHOTS, save_torch
from zoo.runs.loaders import run_data
from zoo.training.engine import Share, run_task
from zoo.training.job import Job, RunRequest
from zoo.training.optimizer import make_optimizer
from zoo.training.progress import Progress
from zoo.training.world import World


def pretrain(request: RunRequest) -> dict:
    """Train the language model, keep the weights with the best validation perplexity; the run's summary."""
    return run_task(request, "pretrain", LanguageModelling)


class LanguageModelling:
    command, weights_file, keeps_at_every_validation = "pretrain", LM_WEIGHTS, True

    def __init__(self, job: Job, world: World, device: str, request: RunRequest):
        self.job, self.world, self.device, self.request = job, world, device, request
        self.config = job.record.config

    # --- set up ---------------------------------------------------------------------------------------------

    def prepare(self) -> tuple[Tokenizer, dict[str, Any]]:
        """The training chunks (train + unsupervised), the validation chunks and the tokenizer of those texts."""
        splits, names = self._splits()
        if splits.held_out_unsupervised and self.world.main:
            print(f"note: left out {splits.held_out_unsupervised:,} unlabelled texts that repeat a validation or "
                  "test text", file=sys.stderr)
        self.config.tokenizer.use_unsupervised = splits.unsupervised is not None
        tokenizer = tokenizer_for(splits, self.config.tokenizer)
        encoded = encode_splits(splits, tokenizer, names)
        pc, learned = self.config.pretrain, [n for n in names if n != "validation"]
        self.texts = chunk_texts([encoded[n] for n in learned], pc.chunk_tokens)
        self.validation = self._validation_chunks(encoded["validation"])
        if not self.job.record.tokenizer and self.world.main:  # a new run: the digests of what it learns from
            digests = text_digests([text for name in learned for text in splits.named()[name]["text"]])
            atomic_write(self.job.run.file(LM_TEXTS), lambda f: np.save(f, digests, allow_pickle=False))
        self.tokenizer = tokenizer
        return tokenizer, {
            "source": absolute_source(splits.source), "fingerprint": splits.fingerprint,
            "with_unsupervised": splits.unsupervised is not None, "held_out_unsupervised": splits.held_out_unsupervised,
            "texts": {n: len(encoded[n]) for n in learned},
            "validation_texts": min(len(encoded["validation"]), pc.eval_texts or sys.maxsize),
            "chunks": {"train": len(self.texts), "validation": len(self.validation)}}

    def _splits(self) -> tuple[Splits, tuple[str, ...]]:
        run, record, data, other = self.job.run, self.job.record, self.job.data, self.request.allow_other_data
        try:
            return run_data(run, record, data, other, with_unsupervised=True), ("train", "unsupervised", "validation")
        except DataError as exc:
            if "no 'unsupervised' split" not in str(exc):
                raise
            print(f"note: {exc}; pretraining on the train split's texts alone", file=sys.stderr)
            return run_data(run, record, data, other), ("train", "validation")

    def _validation_chunks(self, validation: EncodedSplit) -> EncodedSplit:
        """The first pretrain.eval_texts validation texts (0: all), in chunks."""
        keep = self.config.pretrain.eval_texts
        if keep and keep < len(validation):
            validation = EncodedSplit("validation", validation.tokens, validation.offsets[:keep + 1],
                                      validation.labels[:keep])
        return chunk_texts([validation], self.config.pretrain.chunk_tokens, "validation")

    def build(self, fresh: bool) -> dict[str, Any]:
        """The language model (seeded, checked causal), its optimizer, its softmax and the batches of chunks."""
        tc, pc = self.config.train, self.config.pretrain
        torch.manual_seed(tc.seed)
        self.model = build_language_model(self.config, self.tokenizer.vocab_size).to(self.device)
        verify_causal(self.model, origin(self.config.architecture))
        self.optimizer = make_optimizer(self.model, tc)
        self.softmax = (SampledSoftmax(token_counts(self.texts, self.tokenizer.vocab_size), pc.samples, self.device)
                        if pc.softmax == "sampled" else FullSoftmax())
        self.chunk_lengths = self.texts.lengths  # a property that diffs every offset: computed once, not per step
        self.sampler = BucketBatchSampler(self.chunk_lengths, tc.batch_size, tc.max_batch_tokens, tc.seed)
        self.directions = 2 if self.model.bidirectional else 1
        return {"model": self.model, "optimizer": self.optimizer}

    # --- training -------------------------------------------------------------------------------------------

    def count(self, batch: np.ndarray) -> float:
        """The global batch's predicted tokens: every chunk's tokens but one, per direction."""
        return self.directions * int((self.chunk_lengths[batch] - 1).sum())

    def step(self, net: torch.nn.Module, share: Share) -> list[float]:
        """Forward and backward over this process's chunks (the loss scaled to the whole batch's mean over its
        predicted tokens); [summed loss, predicted tokens, 0, input tokens] of those chunks."""
        ids, lens, _ = collate(self.texts, share.rows)
        ids, lens = torch.from_numpy(ids).to(self.device), torch.from_numpy(lens).to(self.device)
        loss = sum(self.softmax.loss(self.model, features, targets) for features, targets in net(ids, lens))
        if share.empty:  # a process without chunks adds a zero gradient
            (loss * 0.0).backward()
            return [0.0, 0.0, 0.0, 0.0]
        (loss * share.processes / share.count).backward()
        return [loss.item(), float(self.directions * int((lens - 1).sum())), 0.0, float(lens.sum())]

    def after_update(self) -> None:
        pass

    def kept(self) -> LanguageModel:
        return self.model

    def after_step(self, progress: Progress) -> None:
        """A snapshot every pretrain.snapshot_minutes of training (snapshots/minutes-M-step-N.pt)."""
        minutes = self.config.pretrain.snapshot_minutes
        if not minutes or progress.train_seconds < (progress.snapshots + 1) * minutes * 60:
            return
        progress.snapshots += 1
        if self.world.main:
            run, spent = self.job.run, progress.train_seconds / 60
            path = run.file(SNAPSHOTS) / f"minutes-{spent:07.2f}-step-{progress.global_step}.pt"
            path.parent.mkdir(exist_ok=True)
            save_torch(self.model.state_dict(), path)
            run.append_metric({"type": "snapshot", "step": progress.global_step, "minutes": round(spent, 2),
                               "file": f"{SNAPSHOTS}/{path.name}"})

    # --- validation and records -----------------------------------------------------------------------------

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Full-softmax cross-entropy per predicted token over the validation chunks (each process its share)."""
        self.model.eval()
        total, count = 0.0, 0
        batches = evaluation_batches(self.validation.lengths, 256, self.config.train.max_batch_tokens or 32768)
        for batch in self.world.shard(batches):
            ids, lens, _ = collate(self.validation, batch)
            for features, targets in self.model(torch.from_numpy(ids).to(self.device),
                                                torch.from_numpy(lens).to(self.device)):
                total += float(self.model.full_loss(features, targets))
                count += len(targets)
        total, count = self.world.sum([total, float(count)])
        loss = total / max(count, 1)
        return {"loss": loss, "perplexity": perplexity(loss)}

    def score(self, validation: dict[str, float]) -> float:
        return -validation["loss"]

    def shown(self, progress: Progress) -> dict[str, str]:
        return {"ppl": f"{perplexity(progress.epoch_loss / progress.epoch_items):,.1f}"}

    def validation_fields(self, validation: dict[str, float], best: bool | None) -> dict[str, Any]:
        return {"best": best, **validation}

    def epoch_fields(self, progress: Progress, validation: dict[str, float]) -> dict[str, Any]:
        train_loss = progress.epoch_loss / max(progress.epoch_items, 1)
        return {"train_loss": train_loss, "train_perplexity": perplexity(train_loss),
                "validation_loss": validation["loss"], "validation_perplexity": validation["perplexity"]}

    # --- the end --------------------------------------------------------------------------------------------

    def finish(self, progress: Progress) -> dict | None:
        """The summary, curves and card (written by the first process)."""
        from zoo.runs.cards import write_pretrain_card
        from zoo.runs.pictures import write_pretrain_curves

        if not self.world.main:
            return None
        run = self.job.run
        summary = {
            "run_dir": str(run.path), "recipe": self.config.recipe, "architecture": self.config.architecture,
            "best_validation_perplexity": perplexity(-progress.best_score), "best_step": progress.best_step,
            "epochs": progress.epoch, "steps": progress.global_step, "seconds": round(progress.train_seconds, 2),
            "tokens_per_second": round(progress.tokens_per_second, 1),
            "snapshots": sorted(p.name for p in run.file(SNAPSHOTS).glob("*.pt")),
        }
        write_pretrain_curves(run)
        write_pretrain_card(run, self.job.record, summary)
        return summary
