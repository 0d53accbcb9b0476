"""Forward+backward throughput of each built-in architecture at the seed size, beside plain nn baselines.

The "cell LSTM" row is an LSTM written as a cell plugin (zoo.cells: the zoo's
time loop, state masking and all), compared with the zoo's fused `classic`.

Batches of 64 reviews with IMDB-like token lengths (log-normal, median 238,
p90 641, capped at 3,822), bucketed by length and padded to each batch's
longest. Prints real (non-pad) tokens per second: the median over repeats.

    python bench/encoder_throughput.py [--batches 12] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from zoo.config.sections import ClassifierConfig, RunConfig
from zoo.models.build import build_classifier
from zoo.models.classifier import Classifier
from zoo.plugin_api import cell_architecture
from zoo.plugin_api.cells import Cell
from zoo.registry.discovery import architectures

VOCAB, EMBED, HIDDEN, BATCH = 8192, 64, 64, 64


def imdb_like_batches(count: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(238), 0.773, size=22_500), 8, 3822).astype(np.int64)
    lengths.sort()  # bucket a training split's worth of reviews: consecutive sorted lengths share a batch
    starts = rng.choice(len(lengths) // BATCH, size=count, replace=False) * BATCH
    batches = []
    for start in sorted(starts):
        lens = torch.from_numpy(lengths[start:start + BATCH].copy())
        ids = torch.randint(1, VOCAB, (BATCH, int(lens.max())))
        ids[torch.arange(ids.shape[1])[None, :] >= lens[:, None]] = 0
        batches.append((ids, lens))
    return batches


class LSTMCell(Cell):
    """A plain LSTM written as a zoo cell (the "cell LSTM" row): input projections hoisted, one addmm a step."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size, self.state_sizes = hidden_size, (hidden_size, hidden_size)
        self.input = nn.Linear(input_size, 4 * hidden_size)
        self.recurrent = nn.Parameter(torch.randn(hidden_size, 4 * hidden_size) / hidden_size ** 0.5)

    def project(self, x):
        return self.input(x)

    def step(self, x_t, state):
        h, c = state
        i, f, g, o = torch.addmm(x_t, h, self.recurrent).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


@dataclass
class CellLSTMHyperparameters:
    hidden_size: int = HIDDEN


CELL_LSTM = cell_architecture("cell-lstm", "an LSTM as a cell plugin", CellLSTMHyperparameters,
                              lambda hp, size: LSTMCell(size, hp.hidden_size))


class PlainEncoder(nn.Module):
    """The baseline: nn.LSTM / nn.GRU straight over the padded batch, no masking, not padding-exact."""

    def __init__(self, rnn: nn.Module, bidirectional: bool):
        super().__init__()
        self.rnn, self.bidirectional = rnn, bidirectional
        self.output_size = rnn.hidden_size * (2 if bidirectional else 1)

    def forward(self, x, lengths):
        return self.rnn(x)[0]


def tokens_per_second(model: nn.Module, batches, repeats: int) -> float:
    loss_fn = nn.BCEWithLogitsLoss()
    real = sum(int(l.sum()) for _, l in batches)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for ids, lens in batches:
            model.zero_grad(set_to_none=True)
            loss = loss_fn(model(ids, lens), torch.ones(len(lens)))
            loss.backward()
        rates.append(real / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches = imdb_like_batches(args.batches)
    real = sum(int(l.sum()) for _, l in batches)
    padded = sum(ids.numel() for ids, _ in batches)
    print(f"{len(batches)} batches of {BATCH}, {real:,} real tokens, padding {1 - real / padded:.1%}, "
          f"{args.threads} threads, torch {torch.__version__}")
    config = lambda arch: RunConfig(arch, arch, architectures().get(arch).hyperparameters(hidden_size=HIDDEN),
                                    ClassifierConfig(embedding_dim=EMBED, pooling="last"))
    baselines = {
        "classic": lambda: PlainEncoder(nn.LSTM(EMBED, HIDDEN, batch_first=True), False),
        "gru": lambda: PlainEncoder(nn.GRU(EMBED, HIDDEN, batch_first=True), False),
        "bilstm": lambda: PlainEncoder(nn.LSTM(EMBED, HIDDEN, batch_first=True, bidirectional=True), True),
    }
    targets = {"classic": 300e3, "gru": 200e3, "bilstm": 200e3, "peephole": 100e3}
    print(f"{'architecture':<12} {'tokens/s':>10} {'target':>9} {'plain nn':>10} {'ratio':>6}")
    for arch in ("classic", "peephole", "gru", "bilstm"):
        rate = tokens_per_second(build_classifier(config(arch), VOCAB), batches[:4] if arch == "peephole" else batches, args.repeats)
        line = f"{arch:<12} {rate:>10,.0f} {targets[arch]:>9,.0f}"
        if arch in baselines:
            base = tokens_per_second(Classifier(baselines[arch](), VOCAB, config(arch)), batches, args.repeats)
            line += f" {base:>10,.0f} {rate / base:>6.2f}"
        print(line, flush=True)
        if arch == "classic":
            classic = rate
    cell_config = RunConfig("cell-lstm", "cell-lstm", CELL_LSTM.hyperparameters(),
                            ClassifierConfig(embedding_dim=EMBED, pooling="last"))
    cell = Classifier(CELL_LSTM.build(cell_config.encoder, EMBED), VOCAB, cell_config)
    rate = tokens_per_second(cell, batches, args.repeats)
    print(f"{'cell LSTM':<12} {rate:>10,.0f} {0.5 * classic:>9,.0f} {'':>10} {rate / classic:>6.2f}"
          "  (target: 0.5x the zoo's fused classic, the ratio shown)", flush=True)


if __name__ == "__main__":
    main()
