"""``nmt serve``: an HTTP JSON API that keeps one model loaded and decodes concurrent requests together.

::

    app = create_app(translator, ServeLimits(max_lines=100), model_info={"arch": "lstm"})
    run_server(app, listen("127.0.0.1", 8000))  # until Ctrl-C

The endpoints:

- ``POST /translate`` with a JSON object ``{"q": ["line", ...], "beam_size": 4}`` (``q`` may also be one
  string, which is one line; ``beam_size`` is optional) answers ``{"translations": [...], "truncated":
  [indices]}``: one translation per line, in order, and the indices of the lines that were longer than
  the model's ``max_source_tokens`` and cut to it.
- ``GET /health``: ``{"status": "ok", ...}`` with the model, the limits and the decoding counters; it
  answers while a batch decodes (decoding runs on a worker thread, never on the event loop).
- ``GET /``: a one-page form (inline script and style, no external assets) that calls ``/translate``.

Requests are batched by :class:`Batcher`: the lines of the requests that arrive within
``batch_window_ms`` of each other (and of those that arrive while a batch decodes) are decoded in one
call, grouped by decoding settings, and each request gets its own lines back in order.

Errors are JSON objects ``{"detail": "...", "limit": "max_lines"}`` (``limit`` only for a breached
bound) with one status per kind: 400 a body that is not UTF-8 or not JSON, 401 a missing or wrong API
key, 413 a bound breached (``max_body``, ``max_lines``, ``max_chars``), 415 a body not declared as
``application/json`` (so a cross-site form cannot post without a CORS preflight), 422 a well-formed
body of the wrong shape (``max_beam_size`` included), 503 a full queue (``max_queued_lines``).

FastAPI and uvicorn are an optional extra (``pip install 'nmtcli[serve]'``), imported only by
:func:`create_app` and :func:`run_server`, so this module imports without them.
"""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from .config import DecodingConfig
from .errors import ConfigError, NmtError

INSTALL_HINT = "pip install 'nmtcli[serve]'"
API_KEY_VARIABLE = "NMT_API_KEY"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

log = logging.getLogger("nmtcli.serve")


class ServeError(NmtError):
    """A request the server refuses: ``status`` is its HTTP status, ``limit`` the bound it breached."""

    def __init__(self, status: int, message: str, limit: str | None = None):
        super().__init__(message)
        self.status = status
        self.limit = limit


class ClientGone(ServeError):
    """The client left before sending the whole body; the answer has nobody to read it."""

    def __init__(self):
        super().__init__(400, "the client disconnected before the end of the body")


class TranslatorLike(Protocol):
    """What the server needs of a translator (``Translator`` and the engines' translators)."""

    max_source_tokens: int

    def effective(self, decoding: DecodingConfig) -> DecodingConfig:
        """``decoding`` as this translator runs it, the model's length penalty filled in."""
        ...

    def translate_stream(self, lines: Iterable[str], decoding: DecodingConfig) -> Iterator[Any]:
        """One result per line, in order, each with ``.translation`` (str) and ``.truncated`` (bool)."""
        ...


@dataclass(frozen=True)
class ServeLimits:
    """The server's bounds. Per request: ``max_lines`` lines, ``max_chars`` characters per line,
    ``max_body`` bytes of body, ``max_beam_size``. Batching: requests arriving within
    ``batch_window_ms`` milliseconds are decoded together, at most ``max_batch_lines`` lines per call
    (a single larger request still decodes whole); more than ``max_queued_lines`` lines waiting
    makes new requests a 503."""

    max_lines: int = 256
    max_chars: int = 1000
    max_body: int = 1_048_576
    max_beam_size: int = 8
    batch_window_ms: float = 5.0
    max_batch_lines: int = 1024
    max_queued_lines: int = 16_384

    def __post_init__(self) -> None:
        for name, low, high in (
            ("max_lines", 1, 1_000_000),
            ("max_chars", 1, 10_000_000),
            ("max_body", 64, 1 << 34),
            ("max_beam_size", 1, 64),
            ("max_batch_lines", 1, 1_000_000),
            ("max_queued_lines", 1, 100_000_000),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(
                    f"{name} must be an integer from {low} to {high}; got {value!r}", field=name
                )
        window = self.batch_window_ms
        if isinstance(window, bool) or not isinstance(window, int | float) or not 0 <= window <= 10_000:
            raise ConfigError(
                f"batch_window_ms must be a number from 0 to 10000; got {window!r}", field="batch_window_ms"
            )


def api_key_from_environment() -> str | None:
    """The API key in ``NMT_API_KEY``, or None when the variable is unset. Set but empty is an error:
    a server meant to be closed must not start open."""
    key = os.environ.get(API_KEY_VARIABLE)
    if key is None:
        return None
    if not key.strip():
        raise ConfigError(f"{API_KEY_VARIABLE} is set but empty; unset it or give it a key")
    return key


def check_installed() -> None:
    """Raise NmtError with the install hint when FastAPI or uvicorn is missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise NmtError(f"`nmt serve` needs FastAPI and uvicorn: {INSTALL_HINT}") from None


# ---------------------------------------------------------------------------------------------------
# Batching


@dataclass
class _Job:
    lines: list[str]
    decoding: DecodingConfig
    future: asyncio.Future


@dataclass
class ServerStats:
    """Counters for ``/health``: decoding calls made, lines and requests decoded, lines waiting,
    whether a decoding call is running (``busy``), seconds spent decoding, and requests whose client
    left before sending the whole body (``dropped``)."""

    batches: int = 0
    lines: int = 0
    requests: int = 0
    queued_lines: int = 0
    busy: bool = False
    dropped: int = 0
    decoding_seconds: float = 0.0


class Batcher:
    """Collects the lines of concurrent requests into decoding calls on one worker thread.

    :meth:`translate` (a coroutine) queues a request's lines and waits for its results. A collector
    task waits ``window_s`` after the first request of a quiet spell, then decodes the waiting
    requests that share the first one's decoding settings (up to ``max_batch_lines`` lines, at least
    one request) in one ``translate_stream`` call on the worker thread, and hands each request its
    slice of the results. Requests that arrive during a decoding call go into the next call at once.
    One worker thread: a model is never run by two threads at a time.
    """

    def __init__(
        self,
        translator: TranslatorLike,
        window_s: float = 0.005,
        max_batch_lines: int = 1024,
        max_queued_lines: int = 16_384,
    ):
        self.translator = translator
        self.window_s = window_s
        self.max_batch_lines = max_batch_lines
        self.max_queued_lines = max_queued_lines
        self.stats = ServerStats()
        self._pending: deque[_Job] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Start the collector on the running event loop."""
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="nmt-decode")
        self._task = asyncio.create_task(self._collect(), name="nmt-batcher")

    async def stop(self) -> None:
        """Stop collecting; requests still waiting fail with a 503."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.set_exception(ServeError(503, "the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def run_in_worker(self, function, *args):
        """``function(*args)`` on the decoding thread (for a warm-up before serving)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def translate(self, lines: list[str], decoding: DecodingConfig) -> list[Any]:
        """The results of ``translator.translate_stream(lines, decoding)``, decoded with whatever
        other requests are waiting. A ``ServeError`` 503 when too many lines are waiting."""
        if self._wakeup is None:
            raise RuntimeError("Batcher.start() was not called")
        if not lines:
            return []
        if self.stats.queued_lines + len(lines) > self.max_queued_lines:
            raise ServeError(
                503,
                f"the server is busy ({self.stats.queued_lines} lines waiting; the limit is "
                f"{self.max_queued_lines}); retry later",
                "max_queued_lines",
            )
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(lines, decoding, future))
        self.stats.queued_lines += len(lines)
        self._wakeup.set()
        return await future

    def _take(self) -> list[_Job]:
        """The next decoding call's requests: the oldest one and the next ones with its settings, up
        to ``max_batch_lines`` lines; requests with other settings keep their places."""
        first = self._pending.popleft()
        taken, kept, total = [first], deque(), len(first.lines)
        while self._pending:
            job = self._pending.popleft()
            if job.decoding == first.decoding and total + len(job.lines) <= self.max_batch_lines:
                taken.append(job)
                total += len(job.lines)
            else:
                kept.append(job)
        self._pending = kept
        return taken

    async def _collect(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # The window lets the other requests of a burst arrive; then everything waiting is served.
            await asyncio.sleep(self.window_s)
            while self._pending:
                await self._decode(self._take())

    async def _decode(self, jobs: list[_Job]) -> None:
        count = sum(len(job.lines) for job in jobs)
        live = [job for job in jobs if not job.future.done()]  # a cancelled request needs no work
        lines = [line for job in live for line in job.lines]
        try:
            if lines:
                self.stats.busy = True
                started = time.perf_counter()
                try:
                    results = await self.run_in_worker(self._decode_now, lines, live[0].decoding)
                finally:
                    self.stats.busy = False
                    self.stats.decoding_seconds += time.perf_counter() - started
                self.stats.batches += 1
                self.stats.lines += len(lines)
                self.stats.requests += len(live)
                start = 0
                for job in live:
                    if not job.future.done():
                        job.future.set_result(results[start : start + len(job.lines)])
                    start += len(job.lines)
        except Exception as exc:  # the model failed: every request of this call gets the error
            for job in live:
                if not job.future.done():
                    job.future.set_exception(exc)
        except asyncio.CancelledError:  # shutting down: the requests of this call are answered too
            for job in live:
                if not job.future.done():
                    job.future.set_exception(ServeError(503, "the server is shutting down"))
            raise
        finally:
            self.stats.queued_lines -= count

    def _decode_now(self, lines: list[str], decoding: DecodingConfig) -> list[Any]:
        results = list(self.translator.translate_stream(lines, decoding))
        if len(results) != len(lines):  # a broken engine must not hand one request another's lines
            raise RuntimeError(f"the translator returned {len(results)} results for {len(lines)} lines")
        return results


# ---------------------------------------------------------------------------------------------------
# Reading and checking a request


def check_content_type(value: str | None) -> None:
    """``Content-Type`` must be ``application/json`` (any charset parameter must be UTF-8)."""
    kind, _, parameters = (value or "").partition(";")
    if kind.strip().lower() != "application/json":
        raise ServeError(415, "send the body as JSON with the header Content-Type: application/json")
    for parameter in parameters.split(";"):
        name, _, charset = parameter.partition("=")
        if name.strip().lower() == "charset" and charset.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise ServeError(415, f"the body must be UTF-8; got charset {charset.strip()}")


def check_declared_length(value: str | None, max_body: int) -> None:
    """A ``Content-Length`` above ``max_body`` is refused before any of the body is read."""
    if value is None:
        return
    if not (value.isascii() and value.isdigit()):
        raise ServeError(400, f"Content-Length must be a number of bytes; got {value[:40]!r}")
    if int(value) > max_body:
        raise ServeError(413, f"the body is {value} bytes; the limit is {max_body} (max_body)", "max_body")


def parse_request(
    body: bytes, limits: ServeLimits, default: DecodingConfig
) -> tuple[list[str], DecodingConfig]:
    """The lines and decoding settings of a ``/translate`` body; a ServeError for anything else."""
    if len(body) > limits.max_body:
        raise ServeError(413, f"the body is over {limits.max_body} bytes (max_body)", "max_body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ServeError(400, f"the body is not valid UTF-8 (byte {exc.start})") from None
    try:
        payload = json.loads(text)
    except RecursionError:
        raise ServeError(400, "the body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise ServeError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ServeError(422, 'the body must be a JSON object such as {"q": ["Hello."]}')
    unknown = sorted(set(payload) - {"q", "beam_size"})
    if unknown:
        names = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise ServeError(422, f"unknown field(s) {names}; the fields are q and beam_size")
    if "q" not in payload:
        raise ServeError(422, 'the field q is missing: {"q": ["Hello."]} or {"q": "Hello."}')
    lines = check_lines(payload["q"], limits)
    decoding = default
    if "beam_size" in payload:
        beam_size = payload["beam_size"]
        if isinstance(beam_size, bool) or not isinstance(beam_size, int):
            raise ServeError(422, f"beam_size must be an integer; got {_json_type(beam_size)}")
        if not 1 <= beam_size <= limits.max_beam_size:
            raise ServeError(
                422,
                f"beam_size must be from 1 to {limits.max_beam_size} (max_beam_size); got {beam_size}",
                "max_beam_size",
            )
        decoding = default.with_options(beam_size=beam_size)
    return lines, decoding


def check_lines(q: Any, limits: ServeLimits) -> list[str]:
    """``q`` (a string or a list of strings) as a list of lines within ``max_lines`` and ``max_chars``."""
    if isinstance(q, str):
        q = [q]
    if not isinstance(q, list):
        raise ServeError(422, f"q must be a string or a list of strings; got {_json_type(q)}")
    if len(q) > limits.max_lines:
        raise ServeError(
            413, f"q has {len(q)} lines; the limit is {limits.max_lines} per request (max_lines)", "max_lines"
        )
    for index, line in enumerate(q):
        if not isinstance(line, str):
            raise ServeError(422, f"q[{index}] must be a string; got {_json_type(line)}")
        if len(line) > limits.max_chars:
            raise ServeError(
                413,
                f"q[{index}] has {len(line)} characters; "
                f"the limit is {limits.max_chars} per line (max_chars)",
                "max_chars",
            )
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a \\ud800 escape: no UTF-8 for it
            raise ServeError(422, f"q[{index}] holds an unpaired surrogate (\\ud800-\\udfff)") from None
    return q


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def authorized(header: str | None, api_key: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <api_key>`` (compared in constant time)."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), api_key.encode())


# ---------------------------------------------------------------------------------------------------
# The page


PAGE_STYLE = """
body { font: 16px/1.4 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
textarea, input, select, button { font: inherit; }
textarea { width: 100%; box-sizing: border-box; }
#output { white-space: pre-wrap; background: #f4f4f4; padding: .75rem; min-height: 2.5rem; }
#error { color: #a00; }
small { color: #555; }
#beam { width: 4em; }
"""

PAGE_SCRIPT = """
const $ = (id) => document.getElementById(id);
fetch("health").then((r) => r.json()).then((health) => {
  $("model").textContent = [health.run, health.arch, health.level].filter(Boolean).join(" \\u00b7 ");
  $("key-row").hidden = !health.api_key_required;
  $("beam").max = health.limits.max_beam_size;
}).catch(() => {});
$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("error").textContent = "";
  $("output").dataset.state = "busy";
  const headers = {"Content-Type": "application/json"};
  if ($("key").value) headers["Authorization"] = "Bearer " + $("key").value;
  const body = JSON.stringify({q: $("source").value.split("\\n"), beam_size: Number($("beam").value)});
  try {
    const response = await fetch("translate", {method: "POST", headers, body});
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.detail || response.statusText);
    $("output").textContent = answer.translations.join("\\n");
    $("output").dataset.state = "done";
  } catch (error) {
    $("error").textContent = String(error.message || error);
    $("output").dataset.state = "error";
  }
});
"""

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nmt serve</title>
<style>{PAGE_STYLE}</style>
</head>
<body>
<h1>Translate</h1>
<p><small id="model"></small></p>
<form id="form">
<p><label for="source">One sentence per line</label><br>
<textarea id="source" rows="4" autofocus></textarea></p>
<p><label for="beam">Beam size</label> <input id="beam" type="number" min="1" value="1">
<span id="key-row" hidden><label for="key">API key</label> <input id="key" type="password"
autocomplete="off"></span>
<button id="go" type="submit">Translate</button></p>
</form>
<p id="error" role="alert"></p>
<div id="output" aria-live="polite"></div>
<script>{PAGE_SCRIPT}</script>
</body>
</html>
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# The page may run only its own inline script and style, and talk only to this server.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src {_csp_hash(PAGE_SCRIPT)}; style-src {_csp_hash(PAGE_STYLE)}; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# ---------------------------------------------------------------------------------------------------
# The application


def create_app(
    translator: TranslatorLike,
    limits: ServeLimits | None = None,
    decoding: DecodingConfig | None = None,
    model_info: dict[str, Any] | None = None,
    api_key: str | None = None,
    warm_up: bool = True,
):
    """The FastAPI application serving ``translator``.

    ``decoding``: the settings of every request (a request may choose its ``beam_size``); an unset
    length penalty is the model's (``translator.effective``).
    ``model_info``: shown by ``/health`` (run name, arch ...). ``api_key``: when given, ``POST
    /translate`` needs ``Authorization: Bearer <api_key>`` (401 otherwise); ``/`` and ``/health``
    stay open (the page is static, and probes need no secret). ``warm_up``: decode one line before
    serving, so that the first request does not pay for tracing the decoder.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse

    limits = limits or ServeLimits()
    decoding = translator.effective(decoding or DecodingConfig())
    batcher = Batcher(
        translator, limits.batch_window_ms / 1000, limits.max_batch_lines, limits.max_queued_lines
    )

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        if warm_up:
            await batcher.run_in_worker(_warm_up, translator, decoding)
        try:
            yield
        finally:
            await batcher.stop()

    # No /docs or /openapi.json: the documentation page loads its script from a CDN.
    app = FastAPI(title="nmt serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.batcher = batcher

    def refuse(error: ServeError) -> JSONResponse:
        content = {"detail": str(error)}
        if error.limit:
            content["limit"] = error.limit
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        if error.status == 503:
            headers = {"Retry-After": "1"}
        return JSONResponse(content, status_code=error.status, headers=headers)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers=PAGE_HEADERS)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        stats = asdict(batcher.stats)
        stats["decoding_seconds"] = round(stats["decoding_seconds"], 3)
        return {
            "status": "ok",
            **(model_info or {}),
            "max_source_tokens": translator.max_source_tokens,
            "api_key_required": api_key is not None,
            "limits": asdict(limits),
            "decoding": {"beam_size": decoding.beam_size, "length_penalty": decoding.length_penalty},
            **stats,
        }

    @app.post("/translate")
    async def translate(request: Request) -> JSONResponse:
        try:
            if api_key is not None and not authorized(request.headers.get("authorization"), api_key):
                raise ServeError(401, "this server needs its API key: Authorization: Bearer <key>")
            check_content_type(request.headers.get("content-type"))
            check_declared_length(request.headers.get("content-length"), limits.max_body)
            body = await read_body(request, limits.max_body)
            lines, chosen = parse_request(body, limits, decoding)
        except ServeError as error:
            if isinstance(error, ClientGone):
                batcher.stats.dropped += 1
            return refuse(error)
        try:
            results = await batcher.translate(lines, chosen)
        except ServeError as error:
            return refuse(error)
        except NmtError as error:  # a setting the model cannot decode with
            return refuse(ServeError(422, str(error)))
        except Exception:  # a fault of the model or the engine, not of the request: worth a traceback
            log.exception("translation failed")
            return refuse(ServeError(500, "translation failed; see the server's log"))
        return JSONResponse(
            {
                "translations": [result.translation for result in results],
                "truncated": [index for index, result in enumerate(results) if result.truncated],
            }
        )

    return app


async def read_body(request, max_body: int) -> bytes:
    """The request body, read as it streams in and refused (413) as soon as it passes ``max_body``
    bytes, whatever ``Content-Length`` said (a chunked body has none). :class:`ClientGone` when the
    client leaves before the end."""
    from starlette.requests import ClientDisconnect

    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                raise ServeError(413, f"the body is over {max_body} bytes (max_body)", "max_body")
    except ClientDisconnect:
        raise ClientGone() from None
    return bytes(body)


def _warm_up(translator: TranslatorLike, decoding: DecodingConfig) -> None:
    for _ in translator.translate_stream(["."], decoding):
        pass


# ---------------------------------------------------------------------------------------------------
# Running


def listen(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one; ``address()`` tells which), so that a
    taken port is an error before the model loads."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(
            f"host {host!r} is not an address this machine can listen on ({exc})", field="host"
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", field="port") from None
    return sock


def address(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a socket from :func:`listen`."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def raise_file_limit() -> None:
    """Let this process hold as many connections as the system allows it (the soft limit on open
    files up to the hard one): thousands of clients at once must not make accept() fail."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65_536, hard)
            )


def make_server(app, log_level: str = "info", access_log: bool = True):
    """A ``uvicorn.Server`` for ``app``, its logs (the access log too) on stderr;
    ``server.run(sockets=[listen(...)])`` serves until a signal, and a test may run it on a thread and
    set ``should_exit``."""
    import copy

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    logging_config = copy.deepcopy(LOGGING_CONFIG)
    for handler in logging_config.get("handlers", {}).values():
        if handler.get("stream") == "ext://sys.stdout":
            handler["stream"] = "ext://sys.stderr"  # the access log is a diagnostic, as all nmt logs are
    config = uvicorn.Config(
        app,
        log_config=logging_config,
        log_level=log_level,
        access_log=access_log,
        backlog=4096,  # bursts of thousands of connections wait in the kernel, not refused
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


def run_server(app, sock: socket.socket, log_level: str = "info", access_log: bool = True) -> None:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM."""
    raise_file_limit()
    make_server(app, log_level, access_log).run(sockets=[sock])
