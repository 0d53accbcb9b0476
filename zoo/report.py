"""Human-facing run artifacts: curves.png (like the seed's plot_graphs) and the README.md model card."""

from __future__ import annotations

import io
import json

from zoo.files import atomic_write, atomic_write_text
from zoo.rundir import CARD, CURVES, RunDir


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
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write(run.file(CURVES), lambda f: f.write(buffer.getvalue()))


def write_card(run: RunDir, summary: dict) -> None:
    info = run.read_info()
    config = info["config"]
    lines = [
        f"# {run.path.name}: {config['recipe']} ({config['architecture']})",
        "",
        "A binary sentiment classifier (IMDB movie reviews, `pos` / `neg`) trained by the recurrent model zoo.",
        "",
        "| | |",
        "| --- | --- |",
        f"| validation accuracy (best epoch {summary['best_epoch']}) | {summary['best_validation_accuracy']:.4f} |",
        f"| test accuracy (25,000 reviews, evaluated once) | {summary['test_accuracy']:.4f} |",
        f"| epochs / steps | {summary['epochs']} / {summary['steps']} |",
        f"| training time | {summary['seconds']:.0f} s ({summary['tokens_per_second']:,.0f} tokens/s) |",
        f"| parameters | {info['parameters']:,} |",
        f"| device / threads | {info['device']} / {info['threads']} |",
        "",
        "## Data",
        "",
        f"Source `{info['data']['source']}` (fingerprint `{info['data']['fingerprint']}`): "
        + ", ".join(f"{name} {rows:,}" for name, rows in info["data"]["rows"].items())
        + ". Validation is a seeded, label-stratified 10% of the train split; the test split was used only "
        "for the final evaluation. Text normalization: `<br />` line breaks become a space, then SentencePiece "
        f"(vocab {info['tokenizer']['vocab_size']:,}, `tokenizer.model`, sha256 `{info['tokenizer']['sha256'][:16]}...`).",
        "",
        "## Configuration",
        "",
        "```json",
        json.dumps(config, indent=2),
        "```",
        "",
        "## Versions",
        "",
        ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        "",
        "![curves](curves.png)",
        "",
    ]
    atomic_write_text(run.file(CARD), "\n".join(lines))
