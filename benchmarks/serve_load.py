"""Load and abuse for `nmt serve`: throughput and latency under concurrent clients, then bad requests.

Starts ``nmt serve --model RUN --port 0`` as a child process (or uses the server at ``--url``), then:

1. **Load**: ``--clients`` concurrent clients (16), each sending one request after another on its own
   keep-alive connection for ``--seconds`` (60), each request ``--lines`` source lines taken in turn
   from ``--corpus`` (the first column). Reported per setting of ``--lines`` (default ``1,200``):
   requests/s, lines/s, p50/p99/max latency in ms, errors (any answer but a 200 with the right number
   of translations, or a broken connection).
2. **Robustness** (``--robustness``): malformed JSON, wrong types, a huge declared body, a huge
   chunked body, invalid UTF-8, deep nesting, garbage bytes, then ``--connections`` (10,000)
   connections opened at once and dropped, some after half a request; a prober (its own process)
   asks ``/health`` every 50 ms throughout and counts the answers that were not a 200 within 30 s.

One JSON object on stdout, with the machine's load average before and after each phase. The client
is a small asyncio HTTP/1.1 client, so that it costs the shared CPU little.

    python benchmarks/serve_load.py --model nmt-workspace/runs/RUN --corpus nmt-workspace/data/test.tsv \\
        --seconds 60 --robustness
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


class Client:
    """One keep-alive HTTP/1.1 connection; ``request`` returns (status, body bytes)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            if name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                close = True
        data = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def load(host: str, port: int, sources: list[str], clients: int, seconds: float, lines: int) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + seconds

    async def client(number: int) -> None:
        connection = Client(host, port)
        position = number * 997
        while time.perf_counter() < deadline:
            batch = [sources[(position + k) % len(sources)] for k in range(lines)]
            position += lines
            body = json.dumps({"q": batch}).encode()
            started = time.perf_counter()
            try:
                status, data = await connection.request(
                    "POST", "/translate", body, {"Content-Type": "application/json"}
                )
                ok = status == 200 and len(json.loads(data)["translations"]) == lines
                kind = None if ok else f"status {status}"
            except Exception as exc:  # a broken connection counts as an error, then reconnect
                kind = type(exc).__name__
                await connection.close()
            if kind is None:
                latencies.append(time.perf_counter() - started)
            else:
                errors[kind] = errors.get(kind, 0) + 1
        await connection.close()

    load_before = os.getloadavg()
    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "lines_per_request": lines,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "lines_per_s": round(len(latencies) * lines / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(1000 * percentile(latencies, 0.99), 1) if latencies else None,
        "max_ms": round(1000 * max(latencies), 1) if latencies else None,
        "errors": errors,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


BAD_BODIES = {
    "malformed JSON": b'{"q": ["a"',
    "not an object": b'["a"]',
    "q a number": b'{"q": 3}',
    "q holds a number": b'{"q": ["a", 3]}',
    "beam_size a string": b'{"q": ["a"], "beam_size": "4"}',
    "beam_size huge": b'{"q": ["a"], "beam_size": 100000000000000000000}',
    "unknown field": b'{"q": ["a"], "x": 1}',
    "invalid UTF-8": b'{"q": ["\xff\xfe\xfd"]}',
    "lone surrogate": b'{"q": ["\\udc00"]}',
    "deep nesting": b"[" * 500_000,
    "long integer": b'{"q": [' + b"9" * 100_000 + b"]}",
    "too many lines": json.dumps({"q": ["a"] * 100_000}).encode(),
    "too long line": json.dumps({"q": ["a" * 100_000]}).encode(),
    "empty body": b"",
}


def probe(host: str, port: int) -> None:
    """The prober (a process of its own, so that the flood's client does not delay it): ``GET /health``
    on a new connection every 50 ms until stdin closes, then one JSON line: probes, failures (not a
    200 within 30 s), median and slowest answer in ms."""
    import http.client
    import select

    latencies, failures = [], 0
    while not select.select([sys.stdin], [], [], 0.05)[0]:
        started = time.perf_counter()
        try:
            connection = http.client.HTTPConnection(host, port, timeout=30)
            connection.request("GET", "/health")
            ok = connection.getresponse().status == 200
            connection.close()
        except OSError:
            ok = False
        failures += not ok
        latencies.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "probes": len(latencies),
                "failures": failures,
                "p50_ms": round(1000 * statistics.median(latencies), 1),
                "slowest_ms": round(1000 * max(latencies), 1),
            }
        )
    )


async def robustness(host: str, port: int, connections: int) -> dict:
    prober = subprocess.Popen(
        [sys.executable, __file__, "--probe", f"{host}:{port}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    await asyncio.sleep(2)  # a few probes before the abuse starts, for comparison
    answers: dict[str, object] = {}
    json_headers = {"Content-Type": "application/json"}
    for name, body in BAD_BODIES.items():
        client = Client(host, port)
        try:
            status, data = await client.request("POST", "/translate", body, json_headers)
            answers[name] = [status, json.loads(data).get("limit") or "JSON error"]
        except Exception as exc:
            answers[name] = f"connection: {type(exc).__name__}"
        finally:
            await client.close()

    async def raw(name: str, data: bytes, send_all: bool = True) -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(data)
            await writer.drain()
            head = await asyncio.wait_for(reader.read(200), 10)
            answers[name] = head.split(b"\r\n", 1)[0].decode(errors="replace")
            writer.close()
        except Exception as exc:
            answers[name] = f"connection: {type(exc).__name__}"

    await raw(
        "declared 10 GB body",
        b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10000000000\r\n\r\n",
    )
    chunk = b"a" * 65536
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(80))  # 5 MiB
    await raw(
        "chunked 5 MiB body",
        b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n",
    )
    await raw("garbage bytes", bytes(range(256)) * 40 + b"\r\n\r\n")
    await raw("huge header", b"GET /health HTTP/1.1\r\nX: " + b"y" * 200_000 + b"\r\n\r\n")

    # Many connections at once, dropped: a third silently, a third after half a request, a third
    # after a whole request without reading the answer.
    opened = dropped = failed = 0
    started = time.perf_counter()
    head = b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    half = head + b"Content-Length: 50\r\n\r\n{"
    whole = head + b'Content-Length: 14\r\n\r\n{"q": ["Go."]}'
    writers = []
    for start in range(0, connections, 500):
        results = await asyncio.gather(
            *(asyncio.open_connection(host, port) for _ in range(min(500, connections - start))),
            return_exceptions=True,
        )
        for number, result in enumerate(results, start):
            if isinstance(result, Exception):
                failed += 1
                continue
            opened += 1
            _, writer = result
            if number % 3 == 1:
                writer.write(half)
            elif number % 3 == 2:
                writer.write(whole)
            writers.append(writer)
    all_open_s = time.perf_counter() - started
    for writer in writers:
        writer.transport.abort()  # dropped: a reset, not a polite close
        dropped += 1
    answers["concurrent connections"] = {
        "asked": connections,
        "opened": opened,
        "failed_to_open": failed,
        "dropped": dropped,
        "seconds_to_open_all": round(all_open_s, 2),
    }
    await asyncio.sleep(2)  # the prober keeps asking while the server cleans up
    health = json.loads(prober.communicate("stop\n", timeout=120)[0])
    client = Client(host, port)
    status, _ = await client.request("GET", "/health")
    await client.close()
    return {"answers": answers, "health_during": health, "health_after": status}


LOG = Path(os.environ.get("TMPDIR", "/tmp")) / f"serve-load-{os.getpid()}.log"


def start_server(model: Path, extra: list[str]) -> tuple[subprocess.Popen, str, int]:
    """``nmt serve`` with its defaults (access log included) on a free port; its output in ``LOG``."""
    code = "import sys; from nmtcli.cli import main; sys.argv[0] = 'nmt'; main()"
    log = open(LOG, "w+b")  # noqa: SIM115 - the child writes it for its whole life
    child = subprocess.Popen(
        [sys.executable, "-c", code, "serve", str(model), "--port", "0", *extra],
        stderr=log,
        stdout=log,
    )
    deadline = time.monotonic() + 300
    while True:
        log.seek(0)
        text = log.read().decode(errors="replace")
        if "http://" in text:
            break
        if child.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"nmt serve did not start:\n{text}")
        time.sleep(0.1)
    address = text.split("http://", 1)[1].split()[0]
    host, port = address.rsplit(":", 1)
    return child, host, int(port)


async def wait_healthy(host: str, port: int) -> None:
    deadline = time.monotonic() + 300
    while True:
        client = Client(host, port)
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            if (await client.request("GET", "/health"))[0] == 200:
                await client.close()
                return
        await client.close()
        if time.monotonic() > deadline:
            raise SystemExit("the server never answered /health")
        await asyncio.sleep(0.1)


def main() -> None:
    if sys.argv[1:2] == ["--probe"]:
        host, port = sys.argv[2].rsplit(":", 1)
        return probe(host, int(port))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--model", type=Path, help="run folder: start `nmt serve` on it")
    where.add_argument("--url", help="a running server, http://HOST:PORT")
    parser.add_argument("--corpus", type=Path, required=True, help="tab-separated; the first column is sent")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--lines", default="1,200", help="lines per request, comma-separated settings")
    parser.add_argument("--robustness", action="store_true")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--serve-option", action="append", default=[], help="passed to nmt serve")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 10,000 sockets need as many descriptors
    with open(args.corpus, encoding="utf-8") as handle:
        sources = [line.split("\t", 1)[0] for line in handle if line.strip()]
    child = None
    if args.model:
        child, host, port = start_server(args.model, args.serve_option)
    else:
        host, port = args.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        port = int(port)
    report: dict = {"cpus": os.cpu_count(), "phases": []}
    try:
        asyncio.run(wait_healthy(host, port))
        for lines in [int(x) for x in args.lines.split(",") if x]:
            result = asyncio.run(load(host, port, sources, args.clients, args.seconds, lines))
            report["phases"].append(result)
            print(json.dumps(result), file=sys.stderr)
        if args.robustness:
            report["load_average_before_robustness"] = [round(x, 2) for x in os.getloadavg()]
            report["robustness"] = asyncio.run(robustness(host, port, args.connections))
    finally:
        if child is not None:
            child.terminate()
            child.wait(60)
            report["server_exit_code"] = child.returncode
            text = LOG.read_text(errors="replace")
            report["server_log"] = {
                "path": str(LOG),
                "lines": text.count("\n"),
                "tracebacks": text.count("Traceback"),
                "warnings": sorted({line for line in text.splitlines() if line.startswith("WARNING")}),
            }
    print(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
