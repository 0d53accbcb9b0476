"""Load test of `zoo serve` on loopback, beside onnxruntime called directly on the same reviews.

    python bench/serve_load.py --run RUN [--data ../shared/datasets/imdb] [--clients 1 8 64 256] [--seconds 10]
                               [--soak 60] [--threads 2] [--workers 1] [--pairs 5]

RUN is a trained run with its ONNX export (RUN/model.onnx). Every request carries one real IMDB test review. Prints:
- direct onnxruntime (zoo.inference.runtime.OnnxClassifier, in this process): reviews/s and p50 latency at batch 1,
  reviews/s at batch 64;
- the server at each number of concurrent clients (each a keep-alive connection sending its next request when the
  last is answered): reviews/s, p50 and p99 latency;
- --pairs pairs of direct batch 64 and the server at 64 clients, one right after the other, and their ratios;
- a soak at 64 clients for --soak seconds with 1% malformed requests: 5xx count, answers against requests, a sample
  of answers against `zoo predict RUN/model.onnx --json`, and the server's RSS at the start and the end;
- SIGTERM during the same load: what the server says it accepted and answered, what the clients received, and its
  exit status.

The clients are plain asyncio streams (a few microseconds a request), so they take little of the CPU the server
needs; both share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets" / "imdb"


def request_bytes(port: int, path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length"))
    return status, await reader.readexactly(length)


class Load:
    """Concurrent keep-alive clients, each sending the reviews in turn; what they got back."""

    def __init__(self, port: int, path: str, reviews: list[str], malformed_every: int = 0):
        self.port, self.path = port, path
        self.bodies = [json.dumps({"texts": [review]}).encode() for review in reviews]
        self.malformed_every = malformed_every
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.sent = self.received = self.unanswered = 0
        self.answers: dict[int, list[bytes]] = {}  # review index -> the bodies answered for it

    async def client(self, number: int, stop: float) -> None:
        index = number
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return
        while time.perf_counter() < stop:
            malformed = self.malformed_every and self.sent % self.malformed_every == self.malformed_every - 1
            body = b'{"texts": "not a list"}' if malformed else self.bodies[index % len(self.bodies)]
            writer.write(request_bytes(self.port, self.path, body))
            started = time.perf_counter()
            self.sent += 1
            try:
                await writer.drain()
                status, answer = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ConnectionError):
                self.unanswered += 1  # the server closed the connection before answering (it stopped)
                return
            self.received += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if not malformed:
                self.latencies.append(time.perf_counter() - started)
                if status == 200 and len(self.answers.get(index % len(self.bodies), [])) < 1:
                    self.answers.setdefault(index % len(self.bodies), []).append(answer)
            index += 97  # the next review, far from the last
        writer.close()

    async def run(self, clients: int, seconds: float) -> None:
        stop = time.perf_counter() + seconds
        await asyncio.gather(*(self.client(n, stop) for n in range(clients)))

    def figures(self, seconds: float) -> dict:
        latencies = sorted(self.latencies)
        return {"requests": self.received, "reviews_per_second": round(len(latencies) / seconds, 1),
                "p50_ms": round(1000 * latencies[len(latencies) // 2], 2) if latencies else None,
                "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 2) if latencies else None,
                "statuses": self.statuses}


def direct(model: Path, reviews: list[str], threads: int, seconds: float) -> dict:
    """onnxruntime in this process: batch 1 (reviews/s, p50 latency) and batch 64 (reviews/s)."""
    from zoo.inference.runtime import OnnxClassifier

    classifier = OnnxClassifier(model, threads=threads)
    classifier.predict(reviews[:64])  # warm up
    latencies, stop, index = [], time.perf_counter() + seconds, 0
    while time.perf_counter() < stop:
        started = time.perf_counter()
        classifier.predict([reviews[index % len(reviews)]])
        latencies.append(time.perf_counter() - started)
        index += 97
    batched, stop, start = 0, time.perf_counter() + seconds, time.perf_counter()
    while time.perf_counter() < stop:
        chunk = [reviews[(batched + i) % len(reviews)] for i in range(64)]
        classifier.predict(chunk)
        batched += 64
    return {"batch_1_reviews_per_second": round(len(latencies) / seconds, 1),
            "batch_1_p50_ms": round(1000 * statistics.median(latencies), 2),
            "batch_64_reviews_per_second": round(batched / (time.perf_counter() - start), 1)}


def pairs(run: Path, port: int, path: str, reviews: list[str], threads: int, count: int) -> dict:
    """Direct batch-64 onnxruntime and the server at 64 clients, one after the other, `count` times (this machine's
    speed drifts: a ratio within a pair is steadier than figures from minutes apart); each pair's ratio, the median."""
    ratios = []
    for _ in range(count):
        alone = direct(run / "model.onnx", reviews, threads, 5.0)["batch_64_reviews_per_second"]
        load = Load(port, path, reviews)
        started = time.perf_counter()
        asyncio.run(load.run(64, 5.0))
        served = load.figures(time.perf_counter() - started)["reviews_per_second"]
        ratios.append({"direct_batch_64": alone, "server_64_clients": served, "ratio": round(served / alone, 3)})
    return {"pairs": ratios, "median_ratio": statistics.median(r["ratio"] for r in ratios)}


def start_server(run: Path, port: int, threads: int, workers: int) -> subprocess.Popen:
    """`zoo serve RUN` with `workers` processes sharing `threads` onnxruntime threads."""
    import httpx

    process = subprocess.Popen([sys.executable, "-m", "zoo.cli", "serve", str(run), "--port", str(port),
                                "--workers", str(workers), "--threads", str(max(1, threads // workers))],
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not start: {process.communicate()[1]}")


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (the workers), MiB."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0.0
    for process in [pid, *map(int, children)]:
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sample_matches(run: Path, reviews: list[str], answers: dict[int, list[bytes]], count: int = 200) -> dict:
    """The server's answers for `count` reviews against `zoo predict RUN/model.onnx --json` on them."""
    indices = sorted(answers)[:count]
    lines = "".join(reviews[i].replace("\n", " ") + "\n" for i in indices)
    done = subprocess.run([sys.executable, "-m", "zoo.cli", "predict", str(run / "model.onnx"), "--json"],
                          input=lines, capture_output=True, text=True, check=True)
    expected = [json.loads(line) for line in done.stdout.splitlines()]
    same = sum(json.loads(answers[i][0])["predictions"][0] == e for i, e in zip(indices, expected))
    return {"checked": len(indices), "identical": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--reviews", type=int, default=2000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64, 256])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--soak", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--pairs", type=int, default=5, help="direct / server pairs at 64 clients")
    parser.add_argument("--workers", type=int, default=1, help="server processes (the threads shared out among them)")
    args = parser.parse_args()

    from zoo.data.splits import load_splits

    test = load_splits(args.data).test
    chosen = np.random.default_rng(0).permutation(len(test))[:args.reviews]
    reviews = [test[int(i)]["text"] for i in chosen]
    rows = {"direct": direct(args.run / "model.onnx", reviews, args.threads, args.seconds)}
    print(json.dumps({"direct": rows["direct"]}), flush=True)

    port = free_port()
    path = f"/v1/models/{args.run.name}/predict"
    server = start_server(args.run, port, args.threads, args.workers)
    for clients in args.clients:
        load = Load(port, path, reviews)
        asyncio.run(load.run(clients, 2.0))  # warm up
        load = Load(port, path, reviews)
        started = time.perf_counter()
        asyncio.run(load.run(clients, args.seconds))
        rows[f"{clients} clients"] = load.figures(time.perf_counter() - started)
        print(json.dumps({f"{clients} clients": rows[f"{clients} clients"]}), flush=True)

    rows["pairs at 64"] = pairs(args.run, port, path, reviews, args.threads, args.pairs)
    print(json.dumps({"pairs at 64": rows["pairs at 64"]}), flush=True)

    soak = Load(port, path, reviews, malformed_every=100)
    before = rss_mib(server.pid)
    started = time.perf_counter()
    asyncio.run(soak.run(64, args.soak))
    rows["soak"] = soak.figures(time.perf_counter() - started) | {
        "sent": soak.sent, "received": soak.received, "unanswered": soak.unanswered,
        "server_errors": sum(n for status, n in soak.statuses.items() if status >= 500),
        "rss_mib_start": round(before, 1), "rss_mib_end": round(rss_mib(server.pid), 1),
        "sample": sample_matches(args.run, reviews, soak.answers)}
    print(json.dumps({"soak": rows["soak"]}), flush=True)

    stopping = Load(port, path, reviews)

    async def load_then_sigterm() -> None:
        running = asyncio.ensure_future(stopping.run(64, 60.0))
        await asyncio.sleep(5.0)
        server.send_signal(signal.SIGTERM)
        await running

    asyncio.run(load_then_sigterm())
    code = server.wait(timeout=60)
    said = [line for line in server.stderr.read().splitlines() if "stopped after" in line]  # one line per worker
    rows["sigterm"] = {"exit_status": code, "server": said, "client_200": stopping.statuses.get(200, 0),
                       "statuses": stopping.statuses, "sent": stopping.sent, "unanswered": stopping.unanswered}
    print(json.dumps({"sigterm": rows["sigterm"]}), flush=True)


if __name__ == "__main__":
    main()
