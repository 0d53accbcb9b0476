"""The pictures a run comes with: training curves (curves.png) and the confusion matrix (confusion.png)."""

from __future__ import annotations

import io
from pathlib import Path

from zoo.files import atomic_write
from zoo.runs.layout import CURVES, RunDir


def write_curves(run: RunDir) -> None:
    """Train and validation loss and accuracy per epoch, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r for r in run.metrics() if r["type"] == "epoch"]
    if not epochs:
        return
    x = [r["epoch"] for r in epochs]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("accuracy", "loss")):
        axis.plot(x, [r[f"train_{metric}"] for r in epochs], marker="o", label=f"train {metric}")
        axis.plot(x, [r[f"validation_{metric}"] for r in epochs], marker="o", label=f"validation {metric}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(run.path.name)
    save_figure(figure, run.file(CURVES))


def save_figure(figure, path) -> None:
    """Write a matplotlib figure as a PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def write_pretrain_curves(run: RunDir) -> None:
    """A pretrain run's perplexity: training (per logged step) and validation, against training minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo.models.language_model import perplexity

    records = run.metrics()
    steps = [r for r in records if r["type"] == "step"]
    checks = [r for r in records if r["type"] in ("validation", "epoch")]
    if not checks:
        return
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot([r["train_seconds"] / 60 for r in steps], [perplexity(r["loss"]) for r in steps], alpha=0.6,
              label="train (sampled softmax)")
    axis.plot([r["train_seconds"] / 60 for r in checks],
              [r.get("validation_perplexity", r.get("perplexity")) for r in checks], marker="o",
              label="validation (full softmax)")
    axis.set_xlabel("training minutes")
    axis.set_ylabel("perplexity")
    axis.set_yscale("log")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.suptitle(run.path.name)
    save_figure(figure, run.file(CURVES))


def write_confusion(path: Path, metrics: dict, title: str) -> None:
    """The confusion matrix as a picture, twice: the counts, and each row as fractions of its true class (so a
    small class's good diagonal reads as good). Rows the true class, columns the predicted one; a colour bar each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    matrix, classes = np.array(metrics["confusion_matrix"]), metrics["classes"]
    fractions = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.7 * len(classes) + 2.5)
    figure, axes = plt.subplots(1, 2, figsize=(2 * size + 1.5, size))
    for axis, values, label, text in ((axes[0], matrix, "texts", lambda v: f"{v:,}"),
                                      (axes[1], fractions, "fraction of the true class", lambda v: f"{v:.2f}")):
        shown = axis.imshow(values, cmap="Blues", vmin=0)
        figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.04, label=label)
        axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        axis.set_yticks(range(len(classes)), classes)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        for (row, column), value in np.ndenumerate(values):
            axis.text(column, row, text(value), ha="center", va="center",
                      color="white" if value > values.max() / 2 else "black")
    axes[0].set_title("counts")
    axes[1].set_title("row-normalised (recall on the diagonal)")
    figure.suptitle(title)
    save_figure(figure, path)
