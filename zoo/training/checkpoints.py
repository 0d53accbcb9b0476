"""last.pt, the resumable state of a run: every part's state dict (model, optimizer, weight average), the
progress, and every process's random number generator state. Written atomically by rank 0 alone, only while
the weights are finite; read without executing code."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch

from zoo.errors import CheckpointError, ConfigError
from zoo.runs.layout import LAST, METRICS, RunDir, load_torch, save_torch
from zoo.training.progress import Progress
from zoo.training.world import World


def read_checkpoint(run: RunDir) -> tuple[dict | None, Progress]:
    """last.pt and its progress; (None, a fresh progress) when the run was killed before its first checkpoint."""
    if not run.file(LAST).exists():
        return None, Progress()
    checkpoint = load_torch(run.file(LAST))
    try:
        progress = Progress.from_saved(checkpoint["progress"])
        for key in ("model", "optimizer", "rng"):
            checkpoint[key]  # noqa: B018 (presence check)
    except (KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{run.file(LAST)} is not a zoo training checkpoint ({type(exc).__name__}: {exc}); "
                              "it cannot be resumed") from None
    return checkpoint, progress


def save_checkpoint(parts: dict[str, Any], progress: Progress, run: RunDir, world: World, device: str) -> None:
    """Write last.pt (a collective call: every rank makes it; rank 0 writes). The caller checked the weights."""
    rng = _rng_states(world, device)
    if world.main:
        progress.metrics_bytes = run.file(METRICS).stat().st_size
        state = {key: part.state_dict() for key, part in parts.items()}
        save_torch(state | {"progress": asdict(progress), "rng": {"ranks": rng}}, run.file(LAST),
                   failpoint_name="checkpoint-write")


def restore_checkpoint(checkpoint: dict, parts: dict[str, Any], run: RunDir, world: World, device: str) -> None:
    """Load each part (anything with load_state_dict) from last.pt, and this rank's random number generators."""
    try:
        for key, part in parts.items():
            part.load_state_dict(checkpoint[key])
    except (RuntimeError, TypeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{run.file(LAST)} does not fit this run's model ({type(exc).__name__}: {exc}); "
                              "it cannot be resumed") from None
    ranks = checkpoint["rng"].get("ranks") or [checkpoint["rng"]]
    if len(ranks) != world.size:
        raise ConfigError(f"{run.file(LAST)} was written by {len(ranks)} process(es); resume it with the same "
                          f"number (torchrun --nproc-per-node ...), not {world.size}")
    torch.set_rng_state(ranks[world.rank]["torch"])
    if device == "cuda" and "cuda" in ranks[world.rank]:
        torch.cuda.set_rng_state_all(ranks[world.rank]["cuda"])


def _rng_states(world: World, device: str) -> list[dict] | None:
    """Every rank's RNG state, on rank 0 (a collective call: every rank makes it)."""
    state = {"torch": torch.get_rng_state()}
    if device == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return world.gather(state)
