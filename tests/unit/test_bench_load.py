"""The load generator against the reference servers on 127.0.0.1: it counts and it checks."""

from __future__ import annotations

import argparse
import asyncio
import socketserver
import threading
import time
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


class SlowEcho(socketserver.BaseRequestHandler):
    """Echoes each message after ``DELAY`` seconds: at most 1 / DELAY requests a second."""

    DELAY = 0.03

    def handle(self) -> None:
        while data := self.request.recv(65536):
            time.sleep(self.DELAY)
            self.request.sendall(data)


class SilentEcho(socketserver.BaseRequestHandler):
    """Reads and never answers."""

    def handle(self) -> None:
        while self.request.recv(65536):
            pass


class WrongEcho(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data[::-1])


def serve(handler: type[socketserver.BaseRequestHandler]) -> Iterator[int]:
    server = refservers.ThreadedEchoServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def slow_echo() -> Iterator[int]:
    yield from serve(SlowEcho)


@pytest.fixture
def silent_echo() -> Iterator[int]:
    yield from serve(SilentEcho)


@pytest.fixture
def wrong_echo() -> Iterator[int]:
    yield from serve(WrongEcho)


def pair_args(port: int, versus_port: int, *extra: str) -> argparse.Namespace:
    return load.parser().parse_args([
        "echo", "--host", "127.0.0.1", "--port", str(port), "--versus", "127.0.0.1",
        "--versus-port", str(versus_port), "--duration", "0.4", "--warmup", "0.1",
        "--turn", "0.1", "--size", "64", *extra])


def test_turns_go_a_b_b_a_after_the_warm_up() -> None:
    turns = load.Turns(start=100.0, length=0.25, warmup=2, measured=8)
    assert [turns.side(t) for t in range(2, 10)] == [0, 1, 1, 0, 0, 1, 1, 0]
    assert [turns.measured(t) for t in (1, 2, 9, 10)] == [False, True, True, False]
    assert turns.at(100.49) == 1 and turns.at(100.5) == 2
    assert turns.edge(10) == 102.5


@pytest.mark.parametrize(("warmup", "duration", "turn", "expected"), [
    (0.3, 2.0, 0.2, (2, 20)), (0.0, 0.1, 0.2, (0, 4)), (0.2, 2.5, 0.2, (1, 24))])
def test_a_run_of_two_covers_the_warm_up_and_whole_blocks(
        warmup: float, duration: float, turn: float, expected: tuple[int, int]) -> None:
    args = load.parser().parse_args([
        "echo", "--host", "a", "--versus", "b", "--port", "1", "--size", "8", "--warmup",
        str(warmup), "--duration", str(duration), "--turn", str(turn)])
    turns = load.pair_turns(args, 0.0)
    assert (turns.warmup, turns.end - turns.warmup) == expected


def test_two_servers_taking_turns_are_each_counted(threaded_echo: int) -> None:
    """The same server on both sides: each side counts, its rate from its own turns."""
    args = pair_args(threaded_echo, threaded_echo, "--concurrency", "3", "--greeting", "5",
                     "--upper")
    run = load.echo_pair(args)
    first, second = run["sides"]
    assert first["requests"] > 0 and second["requests"] > 0
    assert first["rps"] == pytest.approx(3 * first["requests"] / first["busy_seconds"])
    assert run["ratio"] == pytest.approx(first["rps"] / second["rps"])
    assert run["turns"] == 8 and len(run["block_ratios"]) == 2
    # 3 connections, each busy through its side's 4 turns of 0.1 s (and their last reply)
    assert first["busy_seconds"] == pytest.approx(3 * 0.4, rel=0.25)


def test_a_slower_server_measures_slower_whichever_side_it_is_on(
        plain_echo: int, slow_echo: int) -> None:
    """A server that answers after 30 ms serves at most 33 requests/s on one connection:
    its rate is that, not inflated by a request begun at a turn's end and answered in the
    next turn (counted for a 0.1 s turn, that would read 40/s)."""
    slow_first = load.echo_pair(pair_args(slow_echo, plain_echo))
    fast_first = load.echo_pair(pair_args(plain_echo, slow_echo))
    slow_rate = slow_first["sides"][0]["rps"]
    assert 0.5 / SlowEcho.DELAY < slow_rate <= 1.05 / SlowEcho.DELAY
    assert fast_first["sides"][1]["rps"] <= 1.05 / SlowEcho.DELAY
    assert slow_first["ratio"] < 0.5 and fast_first["ratio"] > 2


def test_a_wrong_echo_is_blamed_on_its_own_server(plain_echo: int, wrong_echo: int) -> None:
    with pytest.raises(RuntimeError, match=rf"127.0.0.1 port {wrong_echo}: .*wrong echo"):
        load.echo_pair(pair_args(plain_echo, wrong_echo))


def test_a_server_that_stops_answering_fails_the_run_and_is_named(
        plain_echo: int, silent_echo: int) -> None:
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=rf"127.0.0.1 port {silent_echo}: .*no reply"):
        load.echo_pair(pair_args(plain_echo, silent_echo))
    assert time.monotonic() - started < 0.1 + 0.8 + load.DRAIN_LIMIT + 2
