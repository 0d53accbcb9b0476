"""The HTTP API of `zoo serve`: a FastAPI application over the served models.

    POST /v1/models/NAME/predict   {"texts": [...]} -> {"model": NAME, "predictions": [...]}, as `zoo predict --json`
    GET  /v1/models                every model: classes, architecture, recipe, test figures, export checksum, and
                                   how this process has batched it so far
    GET  /v1/models/NAME           one model, with its card
    GET  /health  GET /ready       alive; ready to answer (503 while the models load or the server drains)
    GET  /                         a page to try the models;  GET /docs, /openapi.json: the API's schema

Status codes: 401 without the key when one is set, 404 for an unknown model, 413 over a limit (named), 422 for
a body that does not fit the schema (the field named), 503 while loading or draining, 504 past the timeout.
No endpoint writes a file or opens a path a request names: the models are the ones the command line gave.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import signal
import sys
import threading
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, AsyncIterator

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field, StrictStr

from zoo import __version__
from zoo.serve.batcher import Batcher
from zoo.serve.limits import BodyLimit
from zoo.serve.models import card, describe
from zoo.serve.settings import SETTINGS_ENV, ServeSettings


class PredictRequest(BaseModel):
    texts: list[StrictStr] = Field(description="the texts to classify, in order")


class Prediction(BaseModel):
    label: str = Field(description="the predicted class")
    probability: float = Field(description="its probability")
    probabilities: dict[str, float] = Field(description="every class's probability")


class PredictResponse(BaseModel):
    model: str
    predictions: list[Prediction]


class ServerState:
    """The models (loaded in the background, so /health answers at once), their batchers, and whether the server
    is draining."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
        self.sources = settings.sources()
        self.names = [source.name for source in self.sources]
        self.batchers: dict[str, Batcher] = {}
        self.described: dict[str, dict[str, Any]] = {}
        self.loading, self.draining, self.failed = True, False, None
        self.accepted = self.answered = 0  # prediction requests this process took in, and answered

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        self._drain_on_signals()
        threading.Thread(target=self._load, args=(loop,), name="zoo-serve-load", daemon=True).start()
        yield
        self.draining = True
        await asyncio.gather(*(batcher.close() for batcher in self.batchers.values()))
        print(f"zoo serve: stopped after answering {self.answered:,} of the {self.accepted:,} prediction requests "
              "it accepted", file=sys.stderr, flush=True)

    def _load(self, loop: asyncio.AbstractEventLoop) -> None:
        from zoo.inference.runtime import OnnxClassifier

        try:
            loaded = {}
            for source in self.sources:
                model = OnnxClassifier(source.onnx, threads=self.settings.threads, batch_size=self.settings.max_batch,
                                       spin=False)  # the event loop shares the cores
                loaded[source.name] = (model, describe(source, model.metadata, model.labels) | {"card": card(source)})
        except Exception as exc:  # the command checked the models before starting, so this is a change since
            self.failed = f"{type(exc).__name__}: {exc}"
            print(f"zoo serve: loading the models failed: {self.failed}", file=sys.stderr, flush=True)
            return
        loop.call_soon_threadsafe(self._start, loaded)

    def _start(self, loaded: dict[str, tuple[Any, dict[str, Any]]]) -> None:
        for name, (model, described) in loaded.items():
            self.batchers[name] = Batcher(name, model.predict, self.settings.max_batch, self.settings.max_wait_ms)
            self.batchers[name].start()
            self.described[name] = described
        self.loading = False

    def _drain_on_signals(self) -> None:
        """SIGTERM and SIGINT first mark the server draining (/ready answers 503: send no more), then reach the
        server, which stops accepting connections and answers every request it has taken in."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if callable(previous):
                signal.signal(sig, lambda number, frame, previous=previous: self._drain(previous, number, frame))

    def _drain(self, previous, number, frame) -> None:
        self.draining = True
        previous(number, frame)

    def unavailable(self, draining_too: bool = False) -> str | None:
        if self.draining and draining_too:
            return "the server is shutting down; retry on another instance"
        if self.failed:
            return f"the models could not be loaded ({self.failed})"
        if self.loading:
            return "the models are still loading; retry in a moment"
        return None

    async def authorize(self, request: Request) -> None:
        """The key check (async: a plain function would cost each request a hop to a worker thread)."""
        if not self.key:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.key.encode()):
            raise HTTPException(401, "send the API key as `Authorization: Bearer KEY`",
                                headers={"WWW-Authenticate": "Bearer"})

    def batcher(self, name: str) -> Batcher:
        self.known(name)
        problem = self.unavailable()
        if problem:
            raise HTTPException(503, problem, headers={"Retry-After": "1"})
        return self.batchers[name]

    def served(self, name: str) -> dict[str, dict[str, int]]:
        """How this process has served the model so far: onnxruntime batches and texts."""
        batcher = self.batchers[name]
        return {"served": {"batches": batcher.batches, "texts": batcher.texts}}

    def known(self, name: str) -> None:
        if name not in self.names:
            raise HTTPException(404, f"no model named {name!r}; this server has {', '.join(self.names)}")


def create_app(settings: ServeSettings) -> FastAPI:
    state = ServerState(settings)
    app = FastAPI(title="recurrent model zoo", version=__version__, lifespan=state.lifespan,
                  description="Text classification with the zoo's exported models.")
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    keyed = [Depends(state.authorize)]

    # The schema documents the answer; it is not validated again on the way out (the runtime built it): that
    # costs a few tenths of a millisecond a request, which a busy server needs for inference.
    @app.post("/v1/models/{name}/predict", response_model=None, dependencies=keyed,
              responses={200: {"model": PredictResponse, "description": "the predictions, in order"}})
    async def predict(name: str, body: PredictRequest) -> JSONResponse:
        """Classify texts: per text, in order, the label, its probability and every class's probability."""
        state.accepted += 1
        try:
            batcher = state.batcher(name)
            check_limits(body.texts, settings)
            predictions = await asyncio.wait_for(batcher.predict(body.texts), settings.timeout_s)
        except asyncio.TimeoutError:
            raise HTTPException(504, f"the model did not answer within {settings.timeout_s:g} s (--timeout)") from None
        finally:
            state.answered += 1
        return JSONResponse({"model": name, "predictions": predictions})

    @app.get("/v1/models", dependencies=keyed)
    async def models() -> dict:
        """Every served model: classes, architecture, recipe, input, test figures, export sha256."""
        if state.loading or state.failed:
            raise HTTPException(503, state.unavailable(), headers={"Retry-After": "1"})
        return {"models": [{k: v for k, v in described.items() if k != "card"} | state.served(name)
                           for name, described in state.described.items()]}

    @app.get("/v1/models/{name}", dependencies=keyed)
    async def model(name: str) -> dict:
        """One model, with its card (the run's README.md)."""
        state.known(name)
        if state.loading or state.failed:
            raise HTTPException(503, state.unavailable(), headers={"Retry-After": "1"})
        return state.described[name] | state.served(name)

    @app.get("/health")
    async def health() -> dict:
        """The process is up (it may still be loading: see /ready)."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """Ready to answer predictions: 200, or 503 while the models load or the server drains."""
        problem = state.unavailable(draining_too=True)
        if problem:
            return JSONResponse({"status": "unavailable", "detail": problem}, status_code=503)
        return JSONResponse({"status": "ready", "models": state.names})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return resources.files("zoo.serve").joinpath("page.html").read_text(encoding="utf-8")

    return app


def check_limits(texts: list[str], settings: ServeSettings) -> None:
    if len(texts) > settings.max_texts:
        raise HTTPException(413, f"a request may hold at most {settings.max_texts} texts (--max-texts); this one "
                                 f"holds {len(texts)}: send them in several requests")
    for index, text in enumerate(texts):
        if len(text) > settings.max_chars:
            raise HTTPException(413, f"texts[{index}] has {len(text):,} characters, over the {settings.max_chars:,} "
                                     "a text may have (--max-chars)")


def app_from_environment() -> FastAPI:
    """The application of a server process, its settings handed over by `zoo serve` (uvicorn's factory)."""
    return create_app(ServeSettings.from_dict(json.loads(os.environ[SETTINGS_ENV])))
