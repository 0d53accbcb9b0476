"""The `zoo` command line. Each command is a thin shell over a module that does the work.

Heavy libraries (torch, onnx, datasets) are imported inside the commands that
need them, so `zoo --help` and `zoo list` start instantly.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import click

from zoo import __version__
from zoo.errors import ZooError


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print ZooErrors as `Error: ...` with exit status 1 and no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ZooError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, sort_keys=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
def main() -> None:
    """The recurrent model zoo: train, export and serve recurrent text classifiers."""


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of rows.")
@user_errors
def list_command(as_json: bool) -> None:
    """List every recipe, architecture and export format, with its status."""
    from zoo.catalog import catalog_rows

    rows = catalog_rows()
    if as_json:
        print_json([row.to_dict() for row in rows])
        return
    width = max((len(r.name) for r in rows), default=4)
    for row in rows:
        line = f"{row.name:<{width}}  {row.kind:<12}  {row.status:<12}  {row.distribution}"
        click.echo(line + (f"  {row.summary}" if row.summary else ""))
        if row.error:
            click.echo(f"{'':<{width}}  error: {row.error}")


@main.command("info")
@click.argument("name")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a hyperparameter.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def info_command(name: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Show the resolved hyperparameters of a recipe or architecture and its parameter count."""
    from zoo.recipes import resolve

    config = resolve(name, overrides)
    from zoo.model import build_classifier, count_parameters

    parameters = count_parameters(build_classifier(config, config.tokenizer.vocab_size))
    info = config.to_dict() | {"parameters": parameters}
    if as_json:
        print_json(info)
        return
    click.echo(f"{name}: architecture {config.architecture}, {parameters:,} parameters "
               f"(vocab {config.tokenizer.vocab_size})")
    for section, values in config.to_dict().items():
        if isinstance(values, dict):
            click.echo(f"[{section}]")
            for key, value in values.items():
                click.echo(f"  {key} = {value!r}")


data_option = click.option(
    "--data", "data", metavar="SRC", default=None,
    help="IMDB source: a Hub id, a Hub-layout folder, an aclImdb folder or aclImdb_v1.tar.gz "
         "(default: $ZOO_DATA, else stanfordnlp/imdb).",
)


@main.command("data")
@data_option
@click.option("--vocab-size", type=click.IntRange(min=64), default=None, help="Tokenizer vocabulary size (default 8192).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def data_command(data: str | None, vocab_size: int | None, as_json: bool) -> None:
    """Load IMDB, build or reuse the tokenizer, and print split and token-length statistics."""
    from zoo.config import TokenizerConfig
    from zoo.datastats import data_summary

    config = TokenizerConfig(**({"vocab_size": vocab_size} if vocab_size else {}))
    summary = data_summary(data, config)
    if as_json:
        print_json(summary)
        return
    click.echo(f"source: {summary['source']}")
    for name, split in summary["splits"].items():
        click.echo(f"  {name:<11} {split['rows']:>7,} reviews  {split['pos']:>7,} pos  {split['neg']:>7,} neg")
    tok = summary["tokenizer"]
    click.echo(f"tokenizer: vocab {tok['vocab_size']:,}, {tok['path']}")
    for name, stats in summary["tokens"].items():
        click.echo(f"  {name:<11} tokens: median {stats['median']:,.0f}, p90 {stats['p90']:,.0f}, "
                   f"max {stats['max']:,}, total {stats['total']:,}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
