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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
