"""The `zoo` command line: one module a group of commands, each a thin shell that parses, calls the module that
does the work, and prints. Heavy libraries (torch, onnx, datasets) are imported inside the commands that need them,
so `zoo --help` and `zoo list` start instantly.
"""

from __future__ import annotations

import click

from zoo import __version__
from zoo.cli.options import main_process


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
@click.pass_context
def main(ctx: click.Context) -> None:
    """The recurrent model zoo: train, export and serve recurrent text classifiers."""
    from zoo.training.world import DISTRIBUTED_COMMANDS, launched_processes

    processes = launched_processes()
    if processes > 1 and ctx.invoked_subcommand not in DISTRIBUTED_COMMANDS:
        # One process answers: torchrun's others would repeat its output or share its stdin.
        if not main_process():
            ctx.exit(0)
        click.echo(f"note: zoo {ctx.invoked_subcommand} runs in one process; the other {processes - 1} process(es) "
                   "torchrun started did nothing (torchrun is for `zoo train` and `zoo pretrain`)", err=True)


def _add_commands() -> None:
    from zoo.cli import catalog, data, export, inference, serve, training

    for command in (catalog.list_command, catalog.info_command, data.data_command, training.train_command,
                    training.pretrain_command, inference.evaluate_command, inference.predict_command,
                    export.export_command, serve.serve_command):
        main.add_command(command)


_add_commands()
