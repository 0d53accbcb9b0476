"""The zoo's cache folder and the lock that lets one process at a time build an entry in it."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def cache_dir() -> Path:
    """Where the zoo caches parsed data, tokenizers and tokenized splits (env ZOO_CACHE)."""
    return Path(os.environ.get("ZOO_CACHE") or Path.home() / ".cache" / "zoo")


@contextmanager
def cache_lock(path: Path) -> Iterator[None]:
    """Hold the inter-process lock for building the cache entry at `path`.

    Inside it no other process writes that entry, so temporary files left by a killed builder are removed.
    """
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        for stale in [*path.parent.glob(f"{path.name}.*.tmp"), *path.parent.glob(f".{path.name}.*.tmp")]:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
        yield
