"""What `zoo serve` was asked for: the models and the limits, passed to each server process as JSON."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from zoo.serve.models import ModelSource, model_sources

SETTINGS_ENV = "ZOO_SERVE_SETTINGS"


@dataclass(frozen=True)
class ServeSettings:
    models: list[str]  # as given: PATH or NAME=PATH
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_batch: int = 64  # texts per onnxruntime batch
    max_wait_ms: float = 2.0  # how long a busy server waits to fill a batch
    api_key_env: str | None = None  # the environment variable holding the API key (never the key itself)
    max_body_bytes: int = 1 << 20
    max_texts: int = 256  # per request
    max_chars: int = 100_000  # per text
    timeout_s: float = 30.0
    threads: int = field(default=0)  # onnxruntime threads per process; 0: the cores shared out among the workers

    def __post_init__(self) -> None:
        if not self.threads:
            object.__setattr__(self, "threads", max(1, (os.cpu_count() or 1) // self.workers))

    def sources(self) -> list[ModelSource]:
        """The models, checked (zoo.serve.models): what the server loads, under their names."""
        return model_sources(self.models)

    def to_dict(self) -> dict[str, Any]:
        """JSON for the server processes, every model named by its absolute path (they may start elsewhere)."""
        return asdict(self) | {"models": [f"{s.name}={s.onnx.resolve()}" for s in self.sources()]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ServeSettings":
        return cls(**values)
