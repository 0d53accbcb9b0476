"""`zoo serve` as its clients use it: a real server process on 127.0.0.1, real HTTP requests, concurrency, the key,
the limits, SIGTERM, two models at once, and the page in a real headless browser."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import conftest
import httpx
import pytest
from conftest import clean_error, run_zoo

TEXTS = ["wonderful superb moving", "awful boring dull terrible", "", "the film " * 200, "charming\u0085tedious",
         "masterful", "weak plot and a wooden cast"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    yield from conftest.tiny_hub_data(tmp_path_factory, train=240, test=60)


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory):
    """A trained run with its ids-in and text-in exports."""
    return conftest.train_tiny(tiny_data, tmp_path_factory.mktemp("runs") / "tiny-bilstm", [], ["--with-tokenizer"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server(*args: str, env: dict | None = None):
    """`zoo serve ARGS --port P` in its own process; yields (base URL, process) once /ready answers 200."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "zoo.cli", "serve", *args, "--port", str(port), "--threads", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("the server did not become ready in 60 s")
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def predict_json(model: Path, texts: list[str]) -> list[dict]:
    """What `zoo predict MODEL --json` says of each text (one per line of stdin)."""
    result = run_zoo("predict", str(model), "--json", stdin="".join(t.replace("\n", " ") + "\n" for t in texts))
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_the_api_answers_as_zoo_predict_does_with_meaningful_status_codes(run):
    with server(str(run)) as (base, _):
        name = run.name
        answer = httpx.post(f"{base}/v1/models/{name}/predict", json={"texts": TEXTS})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"model": name, "predictions": predict_json(run / "model.onnx", TEXTS)}
        assert httpx.post(f"{base}/v1/models/{name}/predict", json={"texts": []}).json()["predictions"] == []

        listed = httpx.get(f"{base}/v1/models").json()["models"]
        assert [m["name"] for m in listed] == [name] and listed[0]["classes"] == ["neg", "pos"]
        assert listed[0]["architecture"] == "bilstm" and listed[0]["recipe"] == "bilstm"
        assert listed[0]["test"]["accuracy"] == json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["accuracy"]
        assert listed[0]["sha256"] == __import__("hashlib").sha256((run / "model.onnx").read_bytes()).hexdigest()
        assert "A 2-class text classifier" in httpx.get(f"{base}/v1/models/{name}").json()["card"]
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        assert httpx.get(f"{base}/ready").json()["status"] == "ready"
        assert "/v1/models/{name}/predict" in httpx.get(f"{base}/openapi.json").json()["paths"]
        assert httpx.get(f"{base}/docs").status_code == 200

        unknown = httpx.post(f"{base}/v1/models/nope/predict", json={"texts": ["x"]})
        assert unknown.status_code == 404 and name in unknown.json()["detail"]
        for body, field in (({"text": ["x"]}, "texts"), ({"texts": "x"}, "texts"), ({"texts": [1, "x"]}, "texts")):
            bad = httpx.post(f"{base}/v1/models/{name}/predict", json=body)
            assert bad.status_code == 422 and field in json.dumps(bad.json()["detail"]), bad.text
        broken = httpx.post(f"{base}/v1/models/{name}/predict", content=b'{"texts": [', headers={"content-type": "application/json"})
        assert broken.status_code == 422
        many = httpx.post(f"{base}/v1/models/{name}/predict", json={"texts": ["x"] * 300})
        assert many.status_code == 413 and "--max-texts" in many.json()["detail"]
        long = httpx.post(f"{base}/v1/models/{name}/predict", json={"texts": ["ok", "x" * 100_001]})
        assert long.status_code == 413 and "texts[1]" in long.json()["detail"] and "--max-chars" in long.json()["detail"]
        huge = httpx.post(f"{base}/v1/models/{name}/predict", json={"texts": ["word " * 60_000] * 4})
        assert huge.status_code == 413 and "--max-body-bytes" in huge.json()["detail"]
        assert httpx.get(f"{base}/ready").status_code == 200  # the server took all of it in its stride


def test_concurrent_requests_are_batched_and_each_gets_its_own_answers(run):
    texts = [f"review {i}: " + " ".join(["superb", "dull", "the film", "moving"][i % 4] for _ in range(i % 40)) for i in range(64)]
    expected = predict_json(run / "model.onnx", texts)
    with server(str(run), "--max-wait-ms", "20") as (base, _):
        def ask(index: int) -> tuple[int, dict]:
            mine = [texts[index], texts[(index * 7) % 64]]
            with httpx.Client() as client:
                return index, client.post(f"{base}/v1/models/{run.name}/predict", json={"texts": mine}).json()

        for _ in range(3):
            with ThreadPoolExecutor(32) as pool:
                answers = list(pool.map(ask, range(64)))
            for index, answer in answers:
                assert answer["predictions"] == [expected[index], expected[(index * 7) % 64]], index
        served = httpx.get(f"{base}/v1/models").json()["models"][0]["served"]
        assert served["texts"] == 3 * 128 and served["batches"] < 3 * 64  # requests shared onnxruntime batches


def test_two_models_at_once_each_under_its_name(run):
    with server(f"ids={run / 'model.onnx'}", f"text={run / 'model-text.onnx'}") as (base, _):
        assert [m["name"] for m in httpx.get(f"{base}/v1/models").json()["models"]] == ["ids", "text"]
        kinds = {m["name"]: m["input"] for m in httpx.get(f"{base}/v1/models").json()["models"]}
        assert kinds == {"ids": "ids", "text": "text"}
        for name, model in (("ids", "model.onnx"), ("text", "model-text.onnx")):
            answer = httpx.post(f"{base}/v1/models/{name}/predict", json={"texts": TEXTS}).json()
            assert answer["predictions"] == predict_json(run / model, TEXTS)


def test_the_key_is_read_from_the_environment_and_compared_in_full(run):
    clean_error(run_zoo("serve", str(run), "--api-key-env", "ZOO_TEST_KEY_UNSET"), "ZOO_TEST_KEY_UNSET", "not set")
    with server(str(run), "--api-key-env", "ZOO_TEST_KEY", env={"ZOO_TEST_KEY": "s3cret-key"}) as (base, process):
        url = f"{base}/v1/models/{run.name}/predict"
        assert "s3cret-key" not in " ".join(open(f"/proc/{process.pid}/cmdline").read().split("\0"))
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer s3cret-ke"},
                        {"Authorization": "s3cret-key"}):
            refused = httpx.post(url, json={"texts": ["x"]}, headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert httpx.post(url, json={"texts": "not a list"}).status_code == 401  # the key first, then the body
        assert httpx.get(f"{base}/v1/models").status_code == 401
        assert httpx.post(url, json={"texts": ["x"]}, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        assert httpx.get(f"{base}/health").status_code == 200 and httpx.get(f"{base}/ready").status_code == 200


def test_models_that_do_not_load_are_refused_before_listening(run, tmp_path):
    clean_error(run_zoo("serve", str(tmp_path)), "no exported model", "zoo export")
    clean_error(run_zoo("serve", str(run), f"{run.name}={run / 'model-text.onnx'}"), "two models would be served")
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    clean_error(run_zoo("serve", str(tmp_path / "broken.onnx")), "not a loadable ONNX model")
    clean_error(run_zoo("serve", f"bad/name={run / 'model.onnx'}"), "a model's name")


def test_while_loading_the_server_says_so(run):
    """The application before its models are loaded (they load in the background, so /health answers at once)."""
    from fastapi.testclient import TestClient

    from zoo.serve.app import create_app
    from zoo.serve.settings import ServeSettings

    client = TestClient(create_app(ServeSettings([str(run)])))  # no lifespan: the models never load
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 503 and "loading" in client.get("/ready").json()["detail"]
    waiting = client.post(f"/v1/models/{run.name}/predict", json={"texts": ["x"]})
    assert waiting.status_code == 503 and waiting.headers["retry-after"] == "1"


def test_sigterm_finishes_every_accepted_request_and_exits_0(run):
    texts = ["the film " * 300] * 64
    with server(str(run), "--max-batch", "16") as (base, process):
        def ask(_: int) -> int:
            try:
                return httpx.post(f"{base}/v1/models/{run.name}/predict", json={"texts": texts}, timeout=60).status_code
            except httpx.TransportError:
                return 0  # not accepted: the server had stopped listening
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(ask, i) for i in range(16)]
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            codes = [f.result() for f in futures]
        assert process.wait(timeout=60) == 0
    assert all(code in (200, 0) for code in codes) and codes.count(200) >= 1, codes


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (.ci/run installs Debian's)")
def test_the_page_in_a_real_browser(run):
    from playwright.sync_api import sync_playwright

    review = "A wonderful, moving film: superb acting and a delightful score."
    with server(str(run), f"text={run / 'model-text.onnx'}") as (base, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        page = browser.new_page()
        page.goto(base + "/")
        page.wait_for_selector(f"#model option[value='{run.name}']", state="attached")
        page.fill("#text", review)
        page.click("#classify")
        page.wait_for_selector("#bars .bar")
        bars = page.eval_on_selector_all("#bars .bar", "rows => rows.map(r => [r.dataset.label, Number(r.dataset.probability), r.querySelector('.value').textContent, r.querySelector('.fill').style.width])")
        answer = httpx.post(f"{base}/v1/models/{run.name}/predict", json={"texts": [review]}).json()["predictions"][0]
        assert {label: p for label, p, _, _ in bars} == answer["probabilities"]
        for label, probability, shown, width in bars:
            assert shown == f"{100 * probability:.2f}%" and width == f"{100 * probability:.2f}%"
        assert answer["label"] in page.inner_text("#status")
        page.select_option("#model", "text")
        page.click("#classify")
        page.wait_for_function("document.querySelector('#status').textContent.includes('%')")
        browser.close()
