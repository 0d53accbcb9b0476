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

    from zoo.language_model import perplexity

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


def write_pretrain_card(run: RunDir, summary: dict) -> None:
    info = run.read_info()
    data = info["data"]
    texts = ", ".join(f"{name} {count:,}" for name, count in data.get("texts", {}).items())
    held_out = (f", and {data['held_out_unsupervised']:,} unlabelled texts that repeat a validation or test text "
                "were left out") if data.get("held_out_unsupervised") else ""
    lines = [
        f"# {run.path.name}: {summary['recipe']} ({summary['architecture']}) language model",
        "",
        "The encoder of a recurrent model zoo architecture trained to predict the next token (and, when it is "
        "bidirectional, the previous one). Start a classifier from it with "
        f"`zoo train RECIPE --init-from {run.path}`.",
        "",
        "| | |",
        "| --- | --- |",
        f"| best validation perplexity (full softmax, step {summary['best_step']}) | "
        f"{summary['best_validation_perplexity']:,.2f} |",
        f"| epochs / steps | {summary['epochs']} / {summary['steps']} |",
        f"| training time | {summary['seconds']:.0f} s ({summary['tokens_per_second']:,.0f} tokens/s) |",
        f"| parameters | {info['parameters']:,} |",
        f"| device / threads / processes | {info['device']} / {info['threads']} / {info.get('processes', 1)} |",
        "",
        f"Texts: `{data['source']}` ({texts}); the language model and its tokenizer never read the validation "
        f"split (its first {data.get('validation_texts', 0):,} texts measure perplexity) nor the test split"
        f"{held_out}. Tokenizer: SentencePiece trained on the same "
        f"training texts (vocab {info['tokenizer']['vocab_size']:,}).",
        "",
        "```json",
        json.dumps(info["config"], indent=2),
        "```",
        "",
        "![curves](curves.png)",
        "",
    ]
    atomic_write_text(run.file(CARD), "\n".join(lines))


def write_card(run: RunDir, summary: dict) -> None:
    info = run.read_info()
    config, data = info["config"], info["data"]
    classes = data.get("classes", ["neg", "pos"])
    rows = data["rows"]
    if summary["test_accuracy"] is None:
        test_row = "| test accuracy | none: the data has no test split, so no test score exists |"
        test_note = "The data has no test split: there is no test score."
    else:
        test_row = (f"| test accuracy / macro-F1 ({rows['test']:,} texts, evaluated once) | "
                    f"{summary['test_accuracy']:.4f} / {summary['test_macro_f1']:.4f} |")
        test_note = "The test split was used only for the final evaluation."
    if info.get("init_from"):
        test_note += (f" The embedding and encoder started from the language model `{info['init_from']['weights']}` "
                      "(`zoo pretrain`), with its tokenizer.")
    validation = ("the dataset's own validation split" if data.get("own_validation")
                  else "a seeded, label-stratified 10% of the train split")
    lines = [
        f"# {run.path.name}: {config['recipe']} ({config['architecture']})",
        "",
        f"A {len(classes)}-class text classifier ({', '.join(f'`{c}`' for c in classes)}) trained by the "
        "recurrent model zoo.",
        "",
        "| | |",
        "| --- | --- |",
        f"| validation accuracy (best epoch {summary['best_epoch']}) | {summary['best_validation_accuracy']:.4f} |",
        test_row,
        f"| epochs / steps | {summary['epochs']} / {summary['steps']} |",
        f"| training time | {summary['seconds']:.0f} s ({summary['tokens_per_second']:,.0f} tokens/s) |",
        f"| parameters | {info['parameters']:,} |",
        f"| device / threads | {info['device']} / {info['threads']} |",
        "",
        "## Data",
        "",
        f"Source `{data['source']}` (fingerprint `{data['fingerprint']}`"
        + (f", columns `{data['columns'][0]}` and `{data['columns'][1]}`" if data.get("columns") else "") + "): "
        + ", ".join(f"{name} {count:,}" for name, count in rows.items())
        + f". Validation is {validation}. {test_note} Text normalization: `<br />` line breaks and NUL become a "
        f"space, then SentencePiece (vocab {info['tokenizer']['vocab_size']:,}, `tokenizer.model`, sha256 "
        f"`{info['tokenizer']['sha256'][:16]}...`).",
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


def write_confusion(path, metrics: dict, title: str) -> None:
    """The confusion matrix as a picture: rows the true class, columns the predicted one, counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    matrix, classes = np.array(metrics["confusion_matrix"]), metrics["classes"]
    size = max(4.0, 0.7 * len(classes) + 2.5)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), classes)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for (row, column), count in np.ndenumerate(matrix):
        axis.text(column, row, f"{count:,}", ha="center", va="center",
                  color="white" if count > matrix.max() / 2 else "black")
    axis.set_title(title)
    save_figure(figure, path)
