"""The load generator against the reference servers on 127.0.0.1: it counts and it checks."""

from __future__ import annotations

import asyncio
import socketserver
import threading
from collections.abc import Iterator

import pytest

from socklab.loadgen import load, refservers


@pytest.fixture
def threaded_echo() -> Iterator[int]:
    """The threaded reference (hello, then upper-case echo) on an ephemeral port."""
    server = refservers.ThreadedEchoServer(("127.0.0.1", 0), refservers.UpperEchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


class PlainEcho(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def plain_echo() -> Iterator[int]:
    server = refservers.ThreadedEchoServer(("127.0.0.1", 0), PlainEcho)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def echo_args(port: int, *extra: str) -> list[str]:
    return ["echo", "--host", "127.0.0.1", "--port", str(port), "--duration", "0.2",
            "--warmup", "0.05", "--tail", "0.1", *extra]


@pytest.mark.parametrize(("size", "concurrency"), [(1024, 1), (100 << 10, 3)])
def test_echo_run_counts_requests_and_latencies(threaded_echo: int, size: int,
                                                concurrency: int) -> None:
    args = load.parser().parse_args(echo_args(
        threaded_echo, "--size", str(size), "--concurrency", str(concurrency),
        "--processes", "2", "--greeting", "5", "--upper"))
    run = load.echo_run(args)
    assert run["requests"] > 0
    assert run["rps"] == pytest.approx(run["requests"] / 0.2)
    assert run["mib_s"] == pytest.approx(run["rps"] * size / (1 << 20))
    latency = run["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert len(run["client_cpu"]) == min(2, concurrency)
    opened, closed = run["window"]
    assert closed - opened == pytest.approx(0.2, abs=0.05)  # processes start a hair apart
    started, stopped = run["loaded"]
    assert started < opened and stopped > closed  # warm-up and tail around the window


def test_only_the_window_is_counted_whatever_the_tail(threaded_echo: int) -> None:
    """A run that went on 0.8 s past its 0.2 s window counts what the window saw, not
    what the tail did (the counters once started again when the window closed: a run
    with a 0.5 s tail reported a quarter of the true rate, 0.2 s a tenth)."""
    def requests(tail: str) -> int:
        args = load.parser().parse_args([
            "echo", "--host", "127.0.0.1", "--port", str(threaded_echo), "--duration", "0.2",
            "--warmup", "0.05", "--tail", tail, "--size", "64", "--processes", "1",
            "--greeting", "5", "--upper"])
        return int(load.echo_run(args)["requests"])

    short, long = requests("0"), requests("0.8")
    assert short > 0 and long > 0
    assert long < 2 * short, (short, long)  # the tail counted: about 4 times as many


def test_echo_run_refuses_a_wrong_echo(plain_echo: int) -> None:
    args = load.parser().parse_args(echo_args(plain_echo, "--size", "64", "--upper"))
    with pytest.raises(RuntimeError, match="wrong echo"):
        load.echo_run(args)


def test_asyncio_reference_greets_and_upper_cases() -> None:
    async def exchange() -> bytes:
        server = await asyncio.get_running_loop().create_server(
            refservers.UpperEchoProtocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            greeting = await reader.readexactly(5)
            writer.write(b"abc")
            reply = await reader.readexactly(3)
            writer.close()
            return greeting + reply

    assert asyncio.run(exchange()) == b"helloABC"


def test_payload_is_lower_case_so_upper_casing_changes_every_byte() -> None:
    message = load.payload(1000)
    assert len(message) == 1000
    assert message.islower() and message.upper() != message
