"""``nmt serve``: a real uvicorn server on a free localhost port, talked to with a real HTTP client.

Most tests run the app on a thread of this process (the tiny model loads once); the command-line tests
start ``nmt serve`` as a child process. The page is checked in headless Chromium where it is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nmtcli import serve
from nmtcli.config import DEFAULT_LENGTH_PENALTY, DecodingConfig

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

SENTENCES = ["red cat.", "the big dog runs.", "small green cat sleeps.", "blue dog eats.", "", "cat cat."]
STARTUP_SECONDS = 180  # a child process imports TensorFlow and traces the decoder on a loaded machine


@pytest.fixture(scope="module")
def translator(tiny_run):
    from nmtcli.translator import Translator

    return Translator.load(tiny_run)


@contextlib.contextmanager
def running(app):
    """``app`` served by uvicorn on a thread, on a free port of 127.0.0.1; yields its base URL."""
    sock = serve.listen("127.0.0.1", 0)
    server = serve.make_server(app, log_level="warning", access_log=False)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:  # the start-up runs a warm-up decode
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield serve.address(sock)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module")
def url(translator):
    with running(serve.create_app(translator, serve.ServeLimits(batch_window_ms=20))) as base:
        yield base


def post(base: str, payload, **headers) -> httpx.Response:
    return httpx.post(f"{base}/translate", json=payload, headers=headers, timeout=120)


# --------------------------------------------------------------------------------------------------
# Translating


def test_translations_are_those_of_nmt_translate(url, tiny_run) -> None:
    from typer.testing import CliRunner

    from nmtcli.cli import app

    result = CliRunner().invoke(app, ["translate", "--model", str(tiny_run), *SENTENCES])
    assert result.exit_code == 0, result.output
    expected = result.stdout.splitlines()
    answer = post(url, {"q": SENTENCES})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"translations": expected, "truncated": []}
    assert expected[4] == "" and any(expected)  # a blank line stays blank; the others translate
    one = post(url, {"q": SENTENCES[1]})  # a single string is one line
    assert one.json()["translations"] == [expected[1]]
    assert post(url, {"q": []}).json()["translations"] == []


def test_beam_search_is_the_libraries(url, translator) -> None:
    answer = post(url, {"q": SENTENCES, "beam_size": 3})
    assert answer.status_code == 200, answer.text
    assert answer.json()["translations"] == translator.translate(SENTENCES, beam_size=3)


def test_concurrent_requests_each_get_their_own_lines_in_order(url, translator) -> None:
    requests = [[SENTENCES[(start + k) % 4] + " " * k for k in range(1 + start % 3)] for start in range(40)]
    expected = dict(zip(SENTENCES[:4], translator.translate(SENTENCES[:4]), strict=True))
    barrier = threading.Barrier(len(requests))

    def send(lines):
        barrier.wait()
        return post(url, {"q": lines})

    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(send, requests))
    for lines, answer in zip(requests, answers, strict=True):
        assert answer.status_code == 200, answer.text
        assert answer.json()["translations"] == [expected[line.strip()] for line in lines]
    health = httpx.get(f"{url}/health").json()
    assert health["requests"] >= len(requests) and health["queued_lines"] == 0


@pytest.fixture(scope="module")
def transformer_run(tmp_path_factory, tiny_data) -> Path:
    from conftest import TINY_TRAINING
    from nmtcli.config import ModelConfig, TrainConfig
    from nmtcli.training import train
    from nmtcli.workspace import Workspace

    return train(
        ModelConfig(arch="transformer", level="subword", units=16, layers=1, heads=2, ff_dim=32, dropout=0.0),
        TrainConfig(**{**TINY_TRAINING, "epochs": 2, "bleu_sample": 0}),
        data_dir=tiny_data,
        workspace=Workspace(tmp_path_factory.mktemp("ws-serve-transformer")),
    ).run_dir


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_every_architecture_is_served(arch, request, tiny_run_factory) -> None:
    from nmtcli.translator import Translator

    run = request.getfixturevalue("transformer_run") if arch == "transformer" else tiny_run_factory(arch)
    translator = Translator.load(run)
    with running(serve.create_app(translator)) as base:
        for beam_size in (1, 3):
            answer = post(base, {"q": SENTENCES, "beam_size": beam_size})
            assert answer.status_code == 200, answer.text
            assert answer.json()["translations"] == translator.translate(SENTENCES, beam_size=beam_size)


def test_health_names_the_model_and_the_limits(translator) -> None:
    app = serve.create_app(translator, model_info={"run": "r1", "arch": "gru-attention"}, warm_up=False)
    with running(app) as base:
        health = httpx.get(f"{base}/health").json()
    assert health["status"] == "ok" and health["run"] == "r1" and health["arch"] == "gru-attention"
    assert health["limits"] == {
        "max_lines": 256,
        "max_chars": 1000,
        "max_body": 1_048_576,
        "max_beam_size": 8,
        "batch_window_ms": 5.0,
        "max_batch_lines": 1024,
        "max_queued_lines": 16_384,
    }
    assert health["api_key_required"] is False and health["max_source_tokens"] == translator.max_source_tokens
    # No length penalty chosen: the recurrent model's.
    assert health["decoding"] == {"beam_size": 1, "length_penalty": DEFAULT_LENGTH_PENALTY}


# --------------------------------------------------------------------------------------------------
# Batching, with a translator that records its calls


class Echo:
    """A translator whose translation of a line is the line in capitals, tagged with the beam size;
    ``gate`` (when given) holds every decoding call until it is set."""

    max_source_tokens = 64

    def __init__(self, gate: threading.Event | None = None):
        self.calls: list[tuple[list[str], int]] = []
        self.gate = gate
        self.started = threading.Event()

    def effective(self, decoding):
        return decoding.for_arch("transformer")

    def translate_stream(self, lines, decoding):
        from nmtcli.translator import Translation

        lines = list(lines)
        self.calls.append((lines, decoding.beam_size))
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(60)
        return iter([Translation(line, f"{line.upper()}/{decoding.beam_size}") for line in lines])


def test_waiting_requests_are_decoded_together_by_settings() -> None:
    echo = Echo()
    greedy, beam = DecodingConfig(), DecodingConfig(beam_size=2)

    async def main():
        batcher = serve.Batcher(echo, window_s=0.01, max_batch_lines=4)
        await batcher.start()
        try:
            return await asyncio.gather(
                batcher.translate(["a", "b"], greedy),
                batcher.translate(["c"], beam),
                batcher.translate(["d", "e"], greedy),
                batcher.translate(["f"], greedy),  # would make 5 lines: waits for the next call
                batcher.translate(["g"], beam),
            ), batcher.stats
        finally:
            await batcher.stop()

    results, stats = asyncio.run(main())
    assert [[r.translation for r in result] for result in results] == [
        ["A/1", "B/1"],
        ["C/2"],
        ["D/1", "E/1"],
        ["F/1"],
        ["G/2"],
    ]
    assert echo.calls == [(["a", "b", "d", "e"], 1), (["c", "g"], 2), (["f"], 1)]
    assert (stats.batches, stats.lines, stats.requests, stats.queued_lines) == (3, 7, 5, 0)


def test_a_full_queue_is_a_503() -> None:
    async def main():
        batcher = serve.Batcher(Echo(), window_s=0.01, max_queued_lines=3)
        await batcher.start()
        try:
            first = asyncio.ensure_future(batcher.translate(["a", "b"], DecodingConfig()))
            await asyncio.sleep(0)
            with pytest.raises(serve.ServeError) as refused:
                await batcher.translate(["c", "d"], DecodingConfig())
            return refused.value, await first
        finally:
            await batcher.stop()

    error, first = asyncio.run(main())
    assert error.status == 503 and error.limit == "max_queued_lines"
    assert [r.translation for r in first] == ["A/1", "B/1"]


def test_health_answers_while_a_batch_decodes() -> None:
    gate = threading.Event()
    echo = Echo(gate)
    with running(serve.create_app(echo, warm_up=False)) as base, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post, base, {"q": ["x"]})
        assert echo.started.wait(60)  # the worker thread is now inside translate_stream
        health = httpx.get(f"{base}/health", timeout=10)
        assert health.status_code == 200 and health.json()["busy"] is True
        assert httpx.get(f"{base}/", timeout=10).status_code == 200
        assert not pending.done()
        gate.set()
        assert pending.result(60).json()["translations"] == ["X/1"]
    assert echo.calls == [(["x"], 1)]


# --------------------------------------------------------------------------------------------------
# Bounds and bad input

SMALL = serve.ServeLimits(max_lines=3, max_chars=20, max_body=400, max_beam_size=4)
JSON = {"Content-Type": "application/json"}
BAD_REQUESTS = [
    # (body, headers, status, limit, words in the message)
    (b'{"q": ["a", "b", "c", "d"]}', JSON, 413, "max_lines", "4 lines"),
    (b'{"q": ["' + b"a" * 21 + b'"]}', JSON, 413, "max_chars", "21 characters"),
    (b'{"q": "' + b"a" * 500 + b'"}', JSON, 413, "max_body", "400"),
    (b'{"q": ["a"], "beam_size": 5}', JSON, 422, "max_beam_size", "from 1 to 4"),
    (b'{"q": ["a"], "beam_size": 0}', JSON, 422, "max_beam_size", "got 0"),
    (b'{"q": ["a"], "beam_size": "2"}', JSON, 422, None, "integer"),
    (b'{"q": ["a"], "beam_size": 2.5}', JSON, 422, None, "integer"),
    (b'{"q": ["a"], "beam_size": true}', JSON, 422, None, "integer"),
    (b'{"q": ["a", 3]}', JSON, 422, None, "q[1] must be a string"),
    (b'{"q": {"a": 1}}', JSON, 422, None, "q must be"),
    (b'{"q": null}', JSON, 422, None, "q must be"),
    (b'{"beam_size": 2}', JSON, 422, None, "q is missing"),
    (b'{"q": ["a"], "lang": "fr"}', JSON, 422, None, "unknown field"),
    (b'["a"]', JSON, 422, None, "JSON object"),
    (b'"a"', JSON, 422, None, "JSON object"),
    (b'{"q": ["a"', JSON, 400, None, "not valid JSON"),
    (b"", JSON, 400, None, "not valid JSON"),
    (b"[" * 300, JSON, 400, None, "not valid JSON"),
    (b'{"q": [' + b"1" * 5000 + b"]}", {**JSON}, 413, "max_body", "400"),
    (b'{"q": ["\xff\xfe"]}', JSON, 400, None, "not valid UTF-8"),
    (b'{"q": ["\\ud800"]}', JSON, 422, None, "surrogate"),
    (b'{"q": ["a"]}', {"Content-Type": "text/plain"}, 415, None, "application/json"),
    (b'{"q": ["a"]}', {}, 415, None, "application/json"),
    (b'{"q": ["a"]}', {"Content-Type": "application/json; charset=latin-1"}, 415, None, "UTF-8"),
]


@pytest.fixture(scope="module")
def small_url(translator):
    with running(serve.create_app(translator, SMALL)) as base:
        yield base


@pytest.mark.parametrize(("body", "headers", "status", "limit", "words"), BAD_REQUESTS)
def test_bad_requests_get_a_json_error(small_url, body, headers, status, limit, words) -> None:
    answer = httpx.post(f"{small_url}/translate", content=body, headers=headers, timeout=60)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert words in error["detail"] and error.get("limit") == limit, error
    assert httpx.get(f"{small_url}/health").json()["status"] == "ok"


def test_the_largest_allowed_request_is_translated(small_url, translator) -> None:
    lines = ["a" * 20, "red cat.", "blue dog."]
    answer = post(small_url, {"q": lines, "beam_size": 4})
    assert answer.status_code == 200 and answer.json()["translations"] == translator.translate(
        lines, beam_size=4
    )


def raw(base: str, request: bytes, shutdown: bool = False) -> tuple[int, dict]:
    """Send ``request`` as it is on a new connection; the status and JSON body of the answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(request)
        if shutdown:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            length = [
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ]
            if length and len(body) >= length[0]:
                break
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if body else {}


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(small_url) -> None:
    request = (
        b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10000000000\r\n\r\n"
    )
    status, error = raw(small_url, request)  # no body sent: the answer cannot wait for it
    assert status == 413 and error["limit"] == "max_body"


def test_a_chunked_body_is_cut_at_the_limit(small_url) -> None:
    chunk = b'{"q": ["' + b"a" * 100
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in [chunk] + [b"a" * 100] * 5) + b"0\r\n\r\n"
    request = (
        b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + body
    )
    status, error = raw(small_url, request)
    assert status == 413 and error["limit"] == "max_body"


def test_broken_http_leaves_the_server_answering(small_url) -> None:
    host, port = small_url.removeprefix("http://").split(":")
    for garbage in [
        b"\x00\xff" * 100 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 100_000,
        b"POST",
    ]:
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(garbage)
    opened = [socket.create_connection((host, int(port)), timeout=30) for _ in range(200)]
    for sock in opened:
        sock.close()
    assert httpx.get(f"{small_url}/health", timeout=30).json()["status"] == "ok"
    assert httpx.get(f"{small_url}/nowhere", timeout=30).status_code == 404


def drop_mid_body(base: str) -> None:
    """Send half of a request body, then reset the connection."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
    sock.sendall(b'Content-Length: 50\r\n\r\n{"q": ')
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # with a zero linger: a reset


def wait_for_dropped(base: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while httpx.get(f"{base}/health", timeout=30).json()["dropped"] < count:
        assert time.monotonic() < deadline, "the server never noticed the dropped request"
        time.sleep(0.02)


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_client_leaving_mid_body_is_counted_not_logged(translator) -> None:
    records = Records()
    loggers = [logging.getLogger(name) for name in ("nmtcli.serve", "uvicorn.error", "uvicorn")]
    with running(serve.create_app(translator, warm_up=False)) as base:
        for logger in loggers:
            logger.addHandler(records)
        try:
            drop_mid_body(base)
            wait_for_dropped(base, 1)
        finally:
            for logger in loggers:
                logger.removeHandler(records)
    assert not [r for r in records.records if r.exc_info or r.levelno >= logging.ERROR], records.records


# --------------------------------------------------------------------------------------------------
# The API key


def test_the_api_key_guards_translate(translator) -> None:
    app = serve.create_app(translator, api_key="s3cret-key", warm_up=False)
    with running(app) as base:
        missing = post(base, {"q": ["red cat."]})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "API key" in missing.json()["detail"]
        for wrong in ["Bearer s3cret", "Bearer s3cret-key2", "Basic s3cret-key", "s3cret-key"]:
            assert post(base, {"q": ["red cat."]}, Authorization=wrong).status_code == 401
        good = post(base, {"q": ["red cat."]}, Authorization="Bearer s3cret-key")
        assert good.status_code == 200 and good.json()["translations"] == translator.translate(["red cat."])
        health = httpx.get(f"{base}/health")
        assert health.status_code == 200 and health.json()["api_key_required"] is True
        assert httpx.get(f"{base}/").status_code == 200


def test_an_empty_api_key_is_an_error(monkeypatch) -> None:
    monkeypatch.setenv("NMT_API_KEY", " ")
    with pytest.raises(serve.ConfigError, match="empty"):
        serve.api_key_from_environment()
    monkeypatch.delenv("NMT_API_KEY")
    assert serve.api_key_from_environment() is None


def test_limits_are_checked() -> None:
    with pytest.raises(serve.ConfigError, match="max_lines"):
        serve.ServeLimits(max_lines=0)
    with pytest.raises(serve.ConfigError, match="batch_window_ms"):
        serve.ServeLimits(batch_window_ms=-1)


# --------------------------------------------------------------------------------------------------
# The page, in headless Chromium


def chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)


class DevTools:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (commands on the
    browser's fd 3, answers and events on its fd 4, each a JSON message ending in a NUL byte)."""

    def __init__(self, browser: str, profile: Path):
        to_browser, self._commands = os.pipe()
        self._answers, from_browser = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-pipe"]
        self.process = subprocess.Popen(
            [
                "bash",  # dash takes one-digit descriptors only
                "-c",
                f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser}',
                browser,
                *flags,
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            pass_fds=(to_browser, from_browser),
            stdout=subprocess.DEVNULL,
            stderr=open(profile.parent / "chromium.log", "wb"),  # noqa: SIM115
        )
        os.close(to_browser)
        os.close(from_browser)
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict] = []

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._answers], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, "Chromium did not answer in time"
            data = os.read(self._answers, 1 << 20)
            assert data, "Chromium closed the pipe"
            self._buffer += data
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, session: str | None = None, timeout: float = 60, **params) -> dict:
        self._next_id += 1
        command = {"id": self._next_id, "method": method, "params": params}
        if session:
            command["sessionId"] = session
        os.write(self._commands, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._message(deadline)
            if message.get("id") == self._next_id:
                assert "error" not in message, message
                return message["result"]
            self.events.append(message)

    def wait_event(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        for index, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(index)
        while True:
            message = self._message(deadline)
            if message.get("method") == method:
                return message
            self.events.append(message)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._commands)
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._answers)


def test_the_page_translates_in_chromium(translator, tmp_path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); the page is untested")
    app = serve.create_app(translator, api_key="page-key", warm_up=False)
    with running(app) as base:
        tools = DevTools(browser, tmp_path / "profile")
        try:
            target = tools.call("Target.createTarget", url="about:blank")["targetId"]
            session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            tools.call("Page.enable", session)
            tools.call("Page.navigate", session, url=f"{base}/")
            tools.wait_event("Page.loadEventFired")

            def evaluate(expression: str):
                answer = tools.call(
                    "Runtime.evaluate", session, expression=expression, awaitPromise=True, returnByValue=True
                )
                assert "exceptionDetails" not in answer, answer
                return answer["result"].get("value")

            wait_for = """(async (test) => { for (let i = 0; i < 1200; i++) { if (test()) return true;
                await new Promise((r) => setTimeout(r, 50)); } return false; })"""
            # The page asked /health whether a key is needed and shows the key field.
            assert evaluate(f'{wait_for}(() => !document.getElementById("key-row").hidden)')
            for field, text in [("key", "page-key"), ("source", "red cat.\nthe big dog runs.")]:
                evaluate(f'document.getElementById("{field}").focus()')
                tools.call("Input.insertText", session, text=text)  # typed, as from a keyboard
            box = evaluate('JSON.stringify(document.getElementById("go").getBoundingClientRect())')
            box = json.loads(box)
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            for kind in ("mousePressed", "mouseReleased"):
                tools.call(
                    "Input.dispatchMouseEvent", session, type=kind, x=x, y=y, button="left", clickCount=1
                )
            assert evaluate(
                f'{wait_for}(() => document.getElementById("output").dataset.state === "done")'
            ), evaluate('document.getElementById("error").textContent')
            shown = evaluate('document.getElementById("output").textContent')
        finally:
            tools.close()
    assert shown.split("\n") == translator.translate(["red cat.", "the big dog runs."])


# --------------------------------------------------------------------------------------------------
# The command line


def nmt_child(
    tmp_path: Path, *args, env: dict | None = None, poison: tuple[str, ...] = ()
) -> subprocess.Popen:
    """``nmt ARGS`` as a child process, its stdout and stderr in files under ``tmp_path``; the modules
    in ``poison`` fail to import there."""
    for name in poison:
        (tmp_path / "poison" / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "poison" / name / "__init__.py").write_text(
            f"raise ImportError('poisoned: {name} was imported')\n", encoding="utf-8"
        )
    environment = {**os.environ, **(env or {})}
    if poison:
        environment["PYTHONPATH"] = str(tmp_path / "poison")
    environment.pop("NMT_DEBUG", None)
    code = "import sys; from nmtcli.cli import main; sys.argv[0] = 'nmt'; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=tmp_path,
        env=environment,
        stdout=open(tmp_path / "stdout", "wb"),  # noqa: SIM115 - the child owns it
        stderr=open(tmp_path / "stderr", "wb"),  # noqa: SIM115
        stdin=subprocess.DEVNULL,
    )


def finished(tmp_path: Path, *args, **options) -> tuple[int, str]:
    child = nmt_child(tmp_path, *args, **options)
    code = child.wait(120)
    return code, (tmp_path / "stderr").read_text(encoding="utf-8")


def test_nmt_serve_serves_the_latest_run_on_localhost_until_sigterm(tmp_path, tiny_run) -> None:
    workspace = tiny_run.parent.parent
    child = nmt_child(tmp_path, "serve", "-w", workspace, "--port", "0", "--max-lines", "2")
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while "serving" not in (tmp_path / "stderr").read_text(encoding="utf-8"):
            assert child.poll() is None, (tmp_path / "stderr").read_text(encoding="utf-8")
            assert time.monotonic() < deadline, "nmt serve did not start"
            time.sleep(0.05)
        line = next(x for x in (tmp_path / "stderr").read_text().splitlines() if "serving" in x)
        base = line.split(" on ")[1].split()[0]
        assert base.startswith("http://127.0.0.1:")  # the default host: this machine only
        while True:  # the socket listens before the model loads; uvicorn answers once it is loaded
            with contextlib.suppress(httpx.TransportError):
                health = httpx.get(f"{base}/health", timeout=120)
                break
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert (
            health.json()["run"] == tiny_run.name and health.json()["engine"] == "tensorflow"
        )  # the engine chosen, not the option
        assert post(base, {"q": ["red cat."]}).json()["translations"][0]
        for body, headers, _status, _limit, _words in BAD_REQUESTS:
            httpx.post(f"{base}/translate", content=body, headers=headers, timeout=60)
        assert post(base, {"q": ["a", "b", "c"]}).json()["limit"] == "max_lines"
        drop_mid_body(base)
        wait_for_dropped(base, 1)
        child.send_signal(signal.SIGTERM)
        code = child.wait(60)
    finally:
        if child.poll() is None:
            child.kill()
    log = (tmp_path / "stderr").read_text(encoding="utf-8")
    assert "Traceback" not in log and "Exception" not in log, log
    assert '"POST /translate HTTP/1.1" 413' in log  # the access log, on stderr with the rest
    assert (tmp_path / "stdout").read_text(encoding="utf-8") == ""
    assert code == 128 + signal.SIGTERM, log


def test_a_wrong_path_fails_before_tensorflow_or_fastapi_loads(tmp_path) -> None:
    code, stderr = finished(
        tmp_path, "serve", "--model", "nope", poison=("tensorflow", "keras", "fastapi", "uvicorn")
    )
    assert code == 1 and stderr.splitlines() == ["nmt: error: nope: model folder not found"], stderr


def test_without_the_extra_the_error_says_what_to_install(tmp_path, tiny_run) -> None:
    code, stderr = finished(tmp_path, "serve", tiny_run, poison=("tensorflow", "keras", "uvicorn"))
    assert code == 1 and stderr.splitlines() == [
        "nmt: error: `nmt serve` needs FastAPI and uvicorn: pip install 'nmtcli[serve]'"
    ], stderr


def test_a_taken_port_fails_before_the_model_loads(tmp_path, tiny_run) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, stderr = finished(tmp_path, "serve", tiny_run, "--port", port, poison=("tensorflow", "keras"))
    assert code == 1 and stderr.splitlines() == [
        f"nmt: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ], stderr


def test_help_imports_neither_tensorflow_nor_the_server(tmp_path) -> None:
    code, stderr = finished(tmp_path, "--help", poison=("tensorflow", "keras", "fastapi", "uvicorn"))
    assert code == 0, stderr
    assert "serve" in (tmp_path / "stdout").read_text(encoding="utf-8")
    code, stderr = finished(tmp_path, "serve", "--help", poison=("tensorflow", "keras", "fastapi", "uvicorn"))
    assert code == 0 and "--batch-window-ms" in (tmp_path / "stdout").read_text(encoding="utf-8"), stderr
