"""Dynamic batching: the requests for one model that arrive together run as one onnxruntime batch.

A batch takes every request waiting when the model becomes free, up to
`max_batch` texts. When the server is busy (two or more requests arrived while
the last batch ran), it also waits up to `max_wait_ms` for more to fill the
batch; when it is idle, a lone request runs at once, so a single client pays no
wait. Inside a batch, texts run in sub-batches of similar length (the runtime
sorts them), so short texts do not pay for long ones, and every caller gets
exactly its own answers, in order. Inference runs on a thread of its own: the
event loop keeps reading requests meanwhile.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

Predict = Callable[[list[str]], list[dict]]


@dataclass
class Pending:
    texts: list[str]
    future: asyncio.Future = field(repr=False)


class Batcher:
    def __init__(self, name: str, predict: Predict, max_batch: int, max_wait_ms: float):
        self.name, self.predict_batch = name, predict
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.queue: asyncio.Queue[Pending] = asyncio.Queue()
        self.carried: Pending | None = None  # taken from the queue, left for the next batch (it would not fit)
        self.arrived = 0  # requests that arrived since the last batch started
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"zoo-serve-{name}")
        self.task: asyncio.Task | None = None
        self.batches = self.texts = 0  # counters for /v1/models (how full the batches run)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"batcher {self.name}")

    async def predict(self, texts: list[str]) -> list[dict]:
        """This request's predictions, computed in a batch with whatever else arrived."""
        future = asyncio.get_running_loop().create_future()
        self.arrived += 1
        self.queue.put_nowait(Pending(texts, future))
        return await future

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(loop)
            self.arrived = 0
            if not batch:  # every caller of it gave up waiting
                continue
            texts = [text for pending in batch for text in pending.texts]
            try:
                results = await loop.run_in_executor(self.executor, self.predict_batch, texts)
            except Exception as exc:  # every caller of the batch hears of it
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            self.batches, self.texts = self.batches + 1, self.texts + len(texts)
            start = 0
            for pending in batch:
                if not pending.future.done():  # a caller that timed out is no longer waiting
                    pending.future.set_result(results[start:start + len(pending.texts)])
                start += len(pending.texts)

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> list[Pending]:
        """The next batch: the first waiting request, then whatever fits before max_batch texts."""
        first = self.carried or await self.queue.get()
        self.carried = None
        batch, count = [first], len(first.texts)
        busy = self.arrived >= 2
        deadline = loop.time() + self.max_wait
        while count < self.max_batch:
            if self.queue.empty():
                remaining = deadline - loop.time()
                if not busy or remaining <= 0:
                    break
                try:
                    pending = await asyncio.wait_for(self.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            else:
                pending = self.queue.get_nowait()
            if count + len(pending.texts) > self.max_batch:
                self.carried = pending
                break
            batch.append(pending)
            count += len(pending.texts)
        return [pending for pending in batch if not pending.future.done()]
