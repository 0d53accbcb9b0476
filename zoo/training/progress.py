"""Where a run's training stands, for every task: saved in each checkpoint, so a resumed run goes on exactly."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

# Checkpoints written before the engine was shared kept the same facts under the tasks' own names.
_OLD_NAMES = {"epoch_seen": "epoch_items", "epoch_predictions": "epoch_items", "best_accuracy": "best_score"}


@dataclass
class Progress:
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    train_seconds: float = 0.0
    tokens: int = 0  # input tokens read
    epoch_loss: float = 0.0  # the epoch's summed training loss ...
    epoch_items: int = 0  # ... over this many items: texts (classifier) or predicted tokens (language model)
    epoch_correct: int = 0  # texts classified right (classifier)
    best_score: float = float("-inf")  # the task's validation score of the kept weights (higher is better)
    best_epoch: int = -1
    best_step: int = -1
    bad_epochs: int = 0  # epochs in a row without a better validation score
    stopped_early: bool = False  # patience ran out: no more epochs, even after a resume
    snapshots: int = 0
    metrics_bytes: int = 0  # metrics.jsonl's size at the checkpoint (a resume drops the records written after)
    finished: bool = False

    def add_step(self, loss_sum: float, items: float, correct: float, tokens: float, seconds: float) -> None:
        self.global_step += 1
        self.step_in_epoch += 1
        self.epoch_loss += loss_sum
        self.epoch_items += int(items)
        self.epoch_correct += int(correct)
        self.tokens += int(tokens)
        self.train_seconds += seconds

    def next_epoch(self) -> None:
        self.epoch += 1
        self.step_in_epoch = self.epoch_items = self.epoch_correct = 0
        self.epoch_loss = 0.0

    def keep(self, score: float) -> None:
        """The weights just validated are the best so far."""
        self.best_score, self.best_epoch, self.best_step, self.bad_epochs = (
            score, self.epoch + 1, self.global_step, 0)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / max(self.train_seconds, 1e-9)

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> "Progress":
        """A checkpoint's progress (older names translated; a language model's best loss becomes its score)."""
        known = {f.name for f in fields(cls)}
        values = {_OLD_NAMES.get(k, k): v for k, v in saved.items()}
        if "best_loss" in saved:
            values["best_score"] = -saved["best_loss"]
        return cls(**{k: v for k, v in values.items() if k in known})
