"""The model cards (README.md) of classifier and pretrain runs."""

from __future__ import annotations

import json

from zoo.files import atomic_write_text
from zoo.runs.layout import CARD, RunDir
from zoo.runs.record import RunRecord


def write_card(run: RunDir, record: RunRecord, summary: dict) -> None:
    """README.md of a classifier run: its classes, figures, data, configuration and library versions."""
    info = record.to_dict()
    config, data = info["config"], info["data"]
    classes = record.classes
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
        f"| device / threads | {_device(info)} / {info['threads']} |",
        "",
        *_notes(summary),
        f"Schedule: {plan_words(record)}." if "plan" in record.setup else "",
        _fit_sentence(record),
        "",
        "## Data",
        "",
        f"Source `{data['source']}` (fingerprint `{data['fingerprint']}`"
        + (f", columns `{data['columns'][0]}` and `{data['columns'][1]}`" if data.get("columns") else "") + "): "
        + ", ".join(f"{name} {count:,}" for name, count in rows.items())
        + f". Validation is {validation}. {test_note} Text normalization: `<br />` line breaks and NUL become a "
        f"space, then SentencePiece (vocab {info['tokenizer']['vocab_size']:,}, `tokenizer.model`, sha256 "
        f"`{info['tokenizer']['sha256'][:16]}...`){_vocabulary_note(record)}.",
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


def _device(info: dict) -> str:
    """The device, with the CPU kernels' instruction set (runs on other sets round differently)."""
    cpu = info["device"] == "cpu" and info.get("cpu_capability")
    return f"cpu ({info['cpu_capability']} kernels)" if cpu else info["device"]


def _notes(summary: dict) -> list[str]:
    """The run's notes on how it fit (undertrained, overfit), as sentences."""
    notes = summary.get("notes") or []
    return [f"Notes: {' '.join(n[0].upper() + n[1:] + '.' for n in notes)}", ""] if notes else []


def plan_words(record: RunRecord) -> str:
    """What the run planned (its epochs, steps and patience) and why: `zoo train`'s `plan:` line and the card's
    schedule."""
    plan, tc, max_steps = record.setup["plan"], record.config.train, record.max_steps
    why = (f"train.min_steps={tc.min_steps:,} lengthens train.epochs={tc.epochs} for {plan['training_texts']:,} "
           "training texts" if plan["epochs"] > tc.epochs else f"train.epochs={tc.epochs}")
    capped = max_steps and max_steps < plan["epochs"] * plan["steps_per_epoch"]
    cap = f", capped at --max-steps {max_steps:,}" if capped else ""
    stop = (f"; it stops after {plan['patience']} epoch(s) without a better validation score (train.patience="
            f"{tc.patience}{', lengthened alike' if plan['patience'] > tc.patience else ''})" if tc.patience else "")
    return (f"{plan['epochs']} epochs of about {plan['steps_per_epoch']:,} steps ({why}{cap}): "
            f"{plan['steps']:,} step{'s' if plan['steps'] != 1 else ''}{stop}, keeping the best epoch's weights")


def _fit_sentence(record: RunRecord) -> str:
    """Whether the run took its recipe's settings for a small set of short texts (zoo.training.fit)."""
    fit = record.setup.get("fit")
    if not fit or "small_data" not in fit:
        return ""
    settings = ", ".join(f"`{key}` = {value}" for key, value in fit["small_data_settings"].items())
    taken = "took" if fit["small_data"] else "did not take"
    return (f"Fit to the data: {fit['training_texts']:,} training texts, median {fit['median_words']:g} words; the "
            f"run {taken} the recipe's settings for a small set of short texts ({settings}).")


def _vocabulary_note(record: RunRecord) -> str:
    """The configuration shows the vocabulary asked for; say so when the texts supported fewer pieces."""
    asked, made = record.config.tokenizer.vocab_size, record.tokenizer.get("vocab_size", 0)
    if made and made != asked:
        return f"; `tokenizer.vocab_size` asked for {asked:,}, the training texts supported {made:,}"
    return ""


def write_pretrain_card(run: RunDir, record: RunRecord, summary: dict) -> None:
    """README.md of a pretrain run: what the language model learned from, how far it got, its config."""
    info = record.to_dict()
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
        f"| device / threads / processes | {_device(info)} / {info['threads']} / {info.get('processes', 1)} |",
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
