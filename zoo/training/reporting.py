"""What a person watching a run sees on stderr: a progress bar in a terminal, with each epoch's figures printed as
it ends; in a log (stderr not a terminal), one line per epoch and one at least every REPORT_SECONDS."""

from __future__ import annotations

import sys
import time
from typing import Any

from zoo.training.progress import Progress

REPORT_SECONDS = 180.0  # a log hears from a long epoch at least this often


class Reporter:
    def __init__(self, enabled: bool, total_steps: int, progress: Progress, command: str):
        self.progress, self.total = progress, total_steps
        self.bar = None
        self.lines = enabled and not sys.stderr.isatty()
        self.last = time.monotonic()
        if enabled and not self.lines:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=progress.global_step, unit="step", file=sys.stderr,
                            dynamic_ncols=True, desc="pretraining" if command == "pretrain" else "training")

    def step(self, shown: dict[str, str]) -> None:
        progress = self.progress
        rate = f"{progress.tokens_per_second:,.0f}"
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(epoch=progress.epoch + 1, **shown, tok_s=rate)
        elif self.lines and time.monotonic() - self.last >= REPORT_SECONDS:
            figures = " ".join(f"{name} {value}" for name, value in shown.items())
            self._say(f"step {progress.global_step:,} of {self.total:,} (epoch {progress.epoch + 1}): {figures}, "
                      f"{rate} tokens/s, {progress.train_seconds:,.0f} s")

    def epoch(self, fields: dict[str, Any], best: bool) -> None:
        if self.bar is None and not self.lines:
            return
        progress = self.progress
        figures = ", ".join(f"{name.replace('_', ' ')} {value:.4f}" for name, value in fields.items())
        self._say(f"epoch {progress.epoch + 1} (step {progress.global_step:,} of {self.total:,}): {figures}"
                  f"{' (best so far)' if best else ''}; {progress.tokens_per_second:,.0f} tokens/s, "
                  f"{progress.train_seconds:,.0f} s")

    def _say(self, line: str) -> None:
        self.last = time.monotonic()
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
