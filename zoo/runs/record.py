"""A run's record, config.json, as a typed value: read and checked once, written whole.

The process that trains a run holds its record and writes it as it learns more
(the data and tokenizer once they are loaded, then the setup); every other
command reads it once with `read_record` and passes it on. The JSON keeps the
layout runs have always had, so runs written by older zoos still load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zoo.config.sections import RunConfig
from zoo.errors import CheckpointError, ZooError
from zoo.runs.layout import CONFIG, RunDir

BINARY = ["neg", "pos"]  # the classes of runs from before classes were recorded (IMDB)
KINDS = ("train", "pretrain")


@dataclass
class RunRecord:
    kind: str  # "train" or "pretrain": the command that made the run
    config: RunConfig
    seed: int
    max_steps: int | None  # part of the run: it shapes the learning-rate schedule
    data: dict[str, Any]  # how the user named the data (zoo.data.splits.DataSpec), then what loading it found
    created: str
    init_from: dict[str, Any] | None = None  # the language model a classifier started from (zoo.training.finetune)
    budget_minutes: float | None = None
    tokenizer: dict[str, Any] = field(default_factory=dict)  # vocab_size, sha256, segmenter
    setup: dict[str, Any] = field(default_factory=dict)  # parameters, device, threads, processes, versions

    @property
    def classes(self) -> list[str]:
        return self.data.get("classes", BINARY)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "config": self.config.to_dict(), "seed": self.seed,
                               "max_steps": self.max_steps, "data": self.data, "created": self.created}
        if self.init_from is not None:
            out["init_from"] = self.init_from
        if self.kind == "pretrain" or self.budget_minutes is not None:
            out["budget_minutes"] = self.budget_minutes
        if self.tokenizer:
            out["tokenizer"] = self.tokenizer
        return out | self.setup

    @classmethod
    def from_dict(cls, info: dict[str, Any], where: str) -> "RunRecord":
        """The record in `info` (config.json's object), checked; CheckpointError naming `where` otherwise."""
        from zoo.registry.resolve import config_from_dict

        if not all(isinstance(info.get(k, {}), dict) for k in ("config", "data", "tokenizer")):
            raise CheckpointError(f"{where} is not a zoo run config (expected a JSON object with 'config', 'data' "
                                  "and 'tokenizer' objects); the run cannot be rebuilt")
        if "config" not in info:
            raise CheckpointError(f"{where} has no 'config' entry; the run cannot be rebuilt")
        try:
            config = config_from_dict(info["config"])
        except ZooError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
        kind = info.get("kind", "train")
        if kind not in KINDS:
            raise CheckpointError(f"{where}: kind {kind!r} is neither train nor pretrain")
        known = {"kind", "config", "seed", "max_steps", "data", "created", "init_from", "budget_minutes", "tokenizer"}
        record = cls(kind=kind, config=config, seed=info.get("seed", config.train.seed),
                     max_steps=info.get("max_steps"), data=info.get("data", {}), created=info.get("created", ""),
                     init_from=info.get("init_from"), budget_minutes=info.get("budget_minutes"),
                     tokenizer=info.get("tokenizer", {}), setup={k: v for k, v in info.items() if k not in known})
        classes = record.classes
        if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) for c in classes)):
            raise CheckpointError(f"{where}: data.classes is not a list of class names")
        return record


def read_record(run: RunDir) -> RunRecord:
    return RunRecord.from_dict(run.read_json(), str(run.file(CONFIG)))


def write_record(run: RunDir, record: RunRecord) -> None:
    run.write_json(record.to_dict())
