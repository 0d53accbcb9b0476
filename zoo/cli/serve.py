"""`zoo serve`: exported models behind an HTTP API."""

from __future__ import annotations

import os

import click

from zoo.cli.options import FiniteFloat, user_errors
from zoo.errors import ConfigError


@click.command("serve")
@click.argument("models", nargs=-1, metavar="MODEL...")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server processes; the cores are shared out among them.")
@click.option("--max-batch", type=click.IntRange(1, 4096), default=64, show_default=True,
              help="Texts per onnxruntime batch.")
@click.option("--max-wait-ms", type=FiniteFloat(min=0, max=1000), default=2.0, show_default=True,
              help="How long a busy server waits to fill a batch (an idle one runs a request at once).")
@click.option("--api-key-env", metavar="VAR", default=None,
              help="Require `Authorization: Bearer KEY`, KEY read from this environment variable.")
@click.option("--max-body-bytes", type=click.IntRange(1024), default=1 << 20, show_default=True)
@click.option("--max-texts", type=click.IntRange(1), default=256, show_default=True, help="Texts per request.")
@click.option("--max-chars", type=click.IntRange(1), default=100_000, show_default=True, help="Characters per text.")
@click.option("--timeout", "timeout_s", type=FiniteFloat(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds a request may wait for its answer (then 504).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="onnxruntime threads per worker (default: the cores shared out among the workers).")
@user_errors
def serve_command(models: tuple[str, ...], api_key_env: str | None, threads: int | None, **options) -> None:
    """Serve exported models over HTTP: MODEL is a run directory (its model.onnx), a model.onnx or a
    model-text.onnx, named by its run (or NAME=PATH).

    POST /v1/models/NAME/predict {"texts": [...]}; GET /v1/models, /health, /ready; a page at /; the API at /docs.
    """
    from zoo.inference.runtime import OnnxClassifier
    from zoo.serve.server import serve
    from zoo.serve.settings import ServeSettings

    if api_key_env is not None and not os.environ.get(api_key_env):
        raise ConfigError(f"--api-key-env {api_key_env}: the environment variable {api_key_env} is not set (or "
                          "empty); export it with the key first (a key never goes on the command line)")
    settings = ServeSettings(list(models), api_key_env=api_key_env, threads=threads or 0, **options)
    for source in settings.sources():  # refuse a model that will not load, before listening
        OnnxClassifier(source.onnx, threads=1)
    serve(settings)
