"""`zoo list` and `zoo info`: what the zoo offers, and what a name resolves to."""

from __future__ import annotations

import click

from zoo.cli.options import print_json, user_errors


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of rows.")
@user_errors
def list_command(as_json: bool) -> None:
    """List every recipe, architecture and export format, with its status."""
    from zoo.registry.catalog import catalog_rows

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


@click.command("info")
@click.argument("name")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a hyperparameter.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def info_command(name: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Show the resolved hyperparameters of a recipe or architecture and its parameter count."""
    from zoo.models.build import build_classifier, count_parameters
    from zoo.registry.discovery import architectures
    from zoo.registry.resolve import find_recipe, resolve, small_data_settings
    from zoo.training.fit import SHORT_TEXT_WORDS, SMALL_DATA_TEXTS

    config = resolve(name, overrides)
    parameters = count_parameters(build_classifier(config, config.tokenizer.vocab_size))
    summary = find_recipe(name).summary or architectures().describe(config.architecture).summary
    small_data = small_data_settings(name, overrides)
    info = config.to_dict() | {"parameters": parameters, "summary": summary, "small_data": small_data}
    if as_json:
        print_json(info)
        return
    click.echo(f"{name}: architecture {config.architecture}, {parameters:,} parameters "
               f"(vocab {config.tokenizer.vocab_size})")
    if summary:
        click.echo(summary)
    for section, values in config.to_dict().items():
        if isinstance(values, dict):
            click.echo(f"[{section}]")
            for key, value in values.items():
                click.echo(f"  {key} = {value!r}")
    if small_data:
        click.echo(f"[small_data]  (instead, on a small set of short texts: under {SMALL_DATA_TEXTS:,}, median under "
                   f"{SHORT_TEXT_WORDS} words)")
        for key, value in small_data.items():
            click.echo(f"  {key} = {value!r}")
