"""Failpoints: named places where the fault tests kill the process with SIGKILL, exactly as `kill -9` would.

`ZOO_FAILPOINT=NAME` kills the process the first time it reaches `failpoint(NAME)`;
`ZOO_FAILPOINT=NAME:N` the N-th time. Without the variable a failpoint costs one
environment lookup. The names in use: tokenizer-training, encoding,
checkpoint-write (between writing last.pt's temporary file and renaming it),
epoch-end (after model.pt, before the epoch's checkpoint), test-evaluation
(after the test record, before the run is marked finished).
"""

from __future__ import annotations

import os
import signal

FAILPOINT_ENV = "ZOO_FAILPOINT"
_reached: dict[str, int] = {}


def failpoint(name: str) -> None:
    wanted = os.environ.get(FAILPOINT_ENV)
    if not wanted or wanted.partition(":")[0] != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == int(wanted.partition(":")[2] or 1):
        os.kill(os.getpid(), signal.SIGKILL)
