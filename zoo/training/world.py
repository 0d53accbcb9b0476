"""Data-parallel training across processes and machines, as `torchrun` launches it.

`torchrun --nproc-per-node N $(command -v zoo) train ...` sets RANK, WORLD_SIZE,
LOCAL_RANK and the rendezvous address in each process's environment; `World`
reads them. One process alone (no torchrun) is a world of size 1 and every
method is a no-op, so the loops read the same either way.

How the engine (zoo.training.engine) uses it: every rank builds the same global
batch (same seed, same sampler) and trains on its own rows of it (`shard`), so
the ranks' rows are disjoint and together exactly the one-process batch. Each
rank's loss is its rows' summed loss divided by the global batch's count and
multiplied by the world size, so DistributedDataParallel's gradient averaging
yields the one-process gradient. Running sums (loss, accuracy, tokens, time)
and the stop flag are summed across ranks every step, so every rank takes the
same decisions. Rank 0 alone writes the run directory.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from zoo.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

DISTRIBUTED_COMMANDS = ("train", "pretrain")  # the commands whose processes share the work under torchrun
# What a collective raises when another process of the job has died (gloo and NCCL wordings).
PEER_FAILURES = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "gloo", "NCCL",
                 "DistNetworkError", "DistBackendError", "Socket Timeout", "connection refused")


def launched_processes() -> int:
    """How many processes torchrun started for this job (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """True on the rank that writes files (rank 0)."""
        return self.rank == 0

    def shard(self, rows: np.ndarray) -> np.ndarray:
        """This rank's rows of a global batch: every size-th row from its rank (disjoint, all rows covered)."""
        return rows[self.rank::self.size]

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over the ranks (float64)."""
        if self.size == 1:
            return values
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def sum_array(self, array: np.ndarray) -> np.ndarray:
        """Element-wise sums of a float64 array over the ranks (each rank's share filled in, zeros elsewhere,
        sums to the whole exactly)."""
        if self.size == 1:
            return array
        import numpy as np
        import torch
        import torch.distributed as dist

        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))
        dist.all_reduce(tensor)
        return tensor.numpy()

    def any(self, flag: bool) -> bool:
        """True on every rank when the flag is set on any rank (a stop request)."""
        return flag if self.size == 1 else self.sum([float(flag)])[0] > 0

    def broadcast(self, value: Any) -> Any:
        """Rank 0's value on every rank (any picklable object)."""
        if self.size == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's value, in rank order, on rank 0 (None elsewhere)."""
        if self.size == 1:
            return [value]
        import torch.distributed as dist

        out = [None] * self.size if self.main else None
        dist.gather_object(value, out, dst=0)
        return out

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()

    def wrap(self, model, device: str):
        """The model in DistributedDataParallel (the model itself in a world of one)."""
        if self.size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[int(os.environ.get("LOCAL_RANK", 0))] if device == "cuda" else None)

    def no_sync(self, net):
        """A context in which backward passes accumulate gradients without averaging them across ranks yet (the
        next backward outside it averages them all); `net` is what `wrap` returned."""
        if self.size == 1:
            import contextlib

            return contextlib.nullcontext()
        return net.no_sync()


def join_world(device: str) -> World:
    """The world this process belongs to: joins torchrun's process group when WORLD_SIZE > 1."""
    size = launched_processes()
    if size == 1:
        return World()
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        try:
            dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot join the torchrun process group ({exc}); launch with torchrun, or unset "
                              "WORLD_SIZE to train in one process") from None
    return World(dist.get_rank(), dist.get_world_size())


@contextmanager
def joined_world(device: str) -> Iterator[World]:
    """The world of this process for the duration of a run, left when the run ends.

    When the run fails because another process of the job died, this process says so in one line and exits at
    once (exit_after_peer_failure) instead of tearing down a group whose peer is gone."""
    world = join_world(device)
    try:
        yield world
    except BaseException as exc:
        exit_after_peer_failure(exc)
        leave_world(world)
        raise
    leave_world(world)


def leave_world(world: World) -> None:
    """Tear the process group down; after a run that succeeded, the loops first meet at a barrier (a rank that
    destroyed its group while another was still in a collective aborted the process under gloo).

    Whatever still refers to the group (DistributedDataParallel's reducer sits in reference cycles) is collected
    first: a gloo group freed later, while the interpreter shuts down, can abort the process with "terminate
    called without an active exception" after a run that succeeded."""
    if world.size > 1:
        import gc

        import torch.distributed as dist

        gc.collect()
        if dist.is_initialized():
            dist.destroy_process_group()
        gc.collect()


def peer_failure(exc: BaseException) -> bool:
    """True when `exc` is a collective failing because another process of a torchrun job died."""
    if launched_processes() == 1:
        return False
    text = f"{type(exc).__name__}: {exc}"
    return isinstance(exc, (RuntimeError, ConnectionError, TimeoutError)) and any(
        word.lower() in text.lower() for word in PEER_FAILURES)


def exit_after_peer_failure(exc: BaseException) -> None:
    """Under torchrun, when `exc` is another process's failure: say so in one line and leave at once (exit 1).

    Leaving with os._exit skips tearing down a process group whose peer is gone (that can hang, or abort in
    gloo's threads); the process that failed first prints its own error. Returns when `exc` is anything else."""
    if not peer_failure(exc):
        return
    rank = os.environ.get("RANK", "?")
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    print(f"Error: another process of this torchrun job failed, so process {rank} stopped too "
          f"({first_line[:200]}); the error that stopped the job is printed by the process that failed first",
          file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
