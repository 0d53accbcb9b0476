"""Running the API: uvicorn, in one process or several (`--workers`), each with its share of the cores for
onnxruntime. SIGTERM (or Ctrl-C) stops accepting connections, lets the requests in flight finish, and exits 0."""

from __future__ import annotations

import json
import os
import signal
import sys

from zoo.serve.settings import SETTINGS_ENV, ServeSettings


def serve(settings: ServeSettings) -> None:
    import uvicorn

    os.environ[SETTINGS_ENV] = json.dumps(settings.to_dict())
    where = f"http://{settings.host}:{settings.port}"
    key = f"the API key in ${settings.api_key_env}" if settings.api_key_env else "no API key"
    print(f"zoo serve: {', '.join(s.name for s in settings.sources())} at {where} ({key}; {settings.workers} "
          f"worker(s), {settings.threads} onnxruntime thread(s) each); try it at {where}/, the API at {where}/docs",
          file=sys.stderr, flush=True)
    # uvicorn shuts down gracefully on SIGTERM / SIGINT, then raises the signal again with the handlers it found:
    # these, which end the process with status 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stopped)
    uvicorn.run("zoo.serve.app:app_from_environment", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, log_level="warning", access_log=False,
                timeout_graceful_shutdown=int(settings.timeout_s) + 5)


def _stopped(number: int, frame) -> None:
    raise SystemExit(0)
