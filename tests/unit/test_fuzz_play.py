"""Playing a fuzz case over a socket pair: the reply read whole, the connection ended its way."""

from __future__ import annotations

import pytest

from socklab.probes.fuzz.cases import Case, Ending
from socklab.probes.fuzz.judging import judge
from socklab.probes.fuzz.play import play
from socklab.probes.fuzz.targets import TARGETS
from socklab.servers.base import serve_connection
from socklab.sessions.echo import UpperEcho

SELECT = TARGETS["select"]


def echo_case(ending: Ending, message: bytes = b"Mixed case \xff\x00 bytes") -> Case:
    return Case("select", 7, 0, "mutation", message, (message[:5], message[5:]), ending)


@pytest.mark.parametrize("ending", [Ending.FIN, Ending.HALF_CLOSE])
def test_fuzz_play_reads_the_whole_echo(socket_pair, background, log, ending: Ending) -> None:
    server, client = socket_pair
    background.start(serve_connection, server, UpperEcho(SELECT.variant.greeting), log)
    case = echo_case(ending)
    outcome = play(client, case, SELECT.family, read_timeout=5.0)
    assert (outcome.dropped, outcome.timed_out, outcome.complete) == (False, False, True)
    assert outcome.reply == SELECT.variant.greeting + case.sent.upper()
    assert judge(SELECT.family, case, outcome) is None


def test_fuzz_play_rst_ends_the_connection_at_once(socket_pair, background, log) -> None:
    server, client = socket_pair
    background.start(serve_connection, server, UpperEcho(SELECT.variant.greeting), log)
    outcome = play(client, echo_case(Ending.RST), SELECT.family, read_timeout=5.0)
    assert (outcome.dropped, outcome.timed_out, outcome.complete) == (False, False, False)
    assert client.fileno() == -1


def test_fuzz_play_counts_a_server_close_as_dropped(socket_pair) -> None:
    server, client = socket_pair
    server.close()  # the server hangs up before the fuzzer is done
    outcome = play(client, echo_case(Ending.FIN), SELECT.family, read_timeout=1.0)
    assert outcome.dropped and not outcome.complete


def test_fuzz_play_timeout_is_the_fuzzers_not_a_failure(socket_pair) -> None:
    _server, client = socket_pair  # a server that reads nothing and says nothing
    outcome = play(client, echo_case(Ending.HALF_CLOSE), SELECT.family, read_timeout=0.2)
    assert (outcome.dropped, outcome.timed_out, outcome.complete) == (False, True, False)


def test_fuzz_play_refuses_an_ending_tcp_has_not(socket_pair) -> None:
    _server, client = socket_pair
    with pytest.raises(ValueError, match="datagrams"):
        play(client, echo_case(Ending.DATAGRAMS), SELECT.family, read_timeout=0.2)
