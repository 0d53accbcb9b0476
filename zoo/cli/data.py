"""`zoo data`: a dataset's columns, classes, split sizes and token lengths, with its tokenizer built or reused."""

from __future__ import annotations

import click

from zoo.cli.options import dataset_options, print_json, user_errors


@click.command("data")
@dataset_options
@click.option("--vocab-size", type=int, default=None, help="Tokenizer vocabulary size (default 8192).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def data_command(spec, vocab_size: int | None, as_json: bool) -> None:
    """Load a dataset, build or reuse the tokenizer, and print its classes, split sizes and token lengths."""
    from zoo.config.sections import TokenizerConfig
    from zoo.config.values import build_section
    from zoo.data.summary import data_summary

    config = build_section(TokenizerConfig, {"vocab_size": vocab_size} if vocab_size else {}, "--vocab-size")
    summary = data_summary(spec, config)
    if as_json:
        print_json(summary)
        return
    click.echo(f"source: {summary['source']} (text column {summary['columns'][0]!r}, "
               f"label column {summary['columns'][1]!r})")
    click.echo(f"classes: {', '.join(summary['classes'])}")
    for name, split in summary["splits"].items():
        counts = "  ".join(f"{label} {count:,}" for label, count in split["labels"].items())
        click.echo(f"  {name:<11} {split['rows']:>7,} texts  {counts}")
    tok = summary["tokenizer"]
    click.echo(f"tokenizer: vocab {tok['vocab_size']:,}, {tok['path']}")
    for name, stats in summary["tokens"].items():
        click.echo(f"  {name:<11} tokens: median {stats['median']:,.0f}, p90 {stats['p90']:,.0f}, "
                   f"max {stats['max']:,}, total {stats['total']:,}")
