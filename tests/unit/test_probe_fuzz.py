"""The fuzz probe: its cases (a pure function of the seed), its endings and its judges."""

from __future__ import annotations

import json
import random
import re

import pytest

from socklab.probes import fuzz
from socklab.protocol import exec_framed, ftp
from socklab.protocol.framing import HEADER, MAX_REQUEST_FRAME
from socklab.servers.base import RECV_SIZE, serve_connection
from socklab.servers.readiness import OUTPUT_CAP
from socklab.servers.udp import MAX_DATAGRAM
from socklab.sessions.echo import HELLO, UpperEcho

CASES_PER_TARGET = 400


def cases(target: str, seed: int = 7, count: int = CASES_PER_TARGET) -> list[fuzz.Case]:
    return [fuzz.make_case(target, seed, index) for index in range(count)]


@pytest.fixture(scope="module")
def all_cases() -> dict[str, list[fuzz.Case]]:
    return {target: cases(target) for target in fuzz.TARGETS}


@pytest.mark.parametrize("target", list(fuzz.TARGETS))
def test_fuzz_same_seed_gives_the_same_cases(target: str) -> None:
    first = cases(target, count=60)
    assert cases(target, count=60) == first
    assert [fuzz.make_case(target, 7, i) for i in reversed(range(60))] == first[::-1]
    assert cases(target, seed=8, count=60) != first


@pytest.mark.parametrize("target", list(fuzz.TARGETS))
def test_fuzz_every_kind_and_ending_appears(all_cases, target: str) -> None:
    spec = fuzz.TARGETS[target]
    made = all_cases[target]
    assert {c.kind for c in made} == set(spec.kinds)
    endings = {fuzz.DATAGRAMS} if spec.transport == "udp" else set(fuzz.TCP_ENDINGS)
    assert {c.ending for c in made} == endings


# The cap each name stands for, taken from the code that enforces it.
SERVER_CAPS = {"RECV_SIZE": RECV_SIZE, "OUTPUT_CAP": OUTPUT_CAP,
               "MAX_REQUEST_FRAME": MAX_REQUEST_FRAME, "MAX_REQUEST": ftp.MAX_REQUEST,
               "MAX_NAME_BYTES": ftp.MAX_NAME_BYTES,
               "DEFAULT_MAX_FILE_SIZE": ftp.DEFAULT_MAX_FILE_SIZE, "MAX_DATAGRAM": MAX_DATAGRAM}


def measured(case: fuzz.Case) -> int:
    """The size the case's cap limits, measured again on the bytes it sends."""
    assert case.cap is not None
    if case.cap.name == "MAX_REQUEST_FRAME":  # the declared length, after a good frame if any
        good = exec_framed.encode_request("echo before")
        offset = len(good) if case.sent.startswith(good) else 0
        return HEADER.unpack_from(case.sent, offset)[0]
    if case.cap.name == "MAX_NAME_BYTES":
        return len(json.loads(case.sent)["filename"].encode())
    if case.cap.name == "DEFAULT_MAX_FILE_SIZE":
        return json.loads(case.sent)["filesize"]
    return len(case.sent)


@pytest.mark.parametrize("target", [t for t in fuzz.TARGETS if t != "udp"])
def test_fuzz_oversized_cases_pass_their_cap(all_cases, target: str) -> None:
    capped = [c for c in all_cases[target] if c.kind in ("oversized", "huge-length")]
    assert capped
    for case in capped:
        assert case.cap is not None and case.cap.value == SERVER_CAPS[case.cap.name]
        assert measured(case) >= case.cap.value + 1, case.describe()
        if case.kind == "oversized":  # just past: by at most PAST_CAP
            assert measured(case) <= case.cap.value + fuzz.PAST_CAP, case.describe()


def test_fuzz_every_ftp_cap_is_tried(all_cases) -> None:
    names = {c.cap.name for c in all_cases["ftp"] if c.cap}
    assert names == {"MAX_REQUEST", "MAX_NAME_BYTES", "DEFAULT_MAX_FILE_SIZE"}
    assert {c.cap.name for c in all_cases["tcp"] if c.cap} == {"RECV_SIZE", "OUTPUT_CAP"}


def test_fuzz_udp_datagrams_fit_and_the_largest_is_sent(all_cases) -> None:
    made = all_cases["udp"]
    assert all(len(d) <= MAX_DATAGRAM for c in made for d in c.parts)
    largest = [c for c in made if c.kind == "max-datagram"]
    assert largest and all(c.parts == (c.message,) and len(c.message) == MAX_DATAGRAM
                           for c in largest)
    assert any(len(c.parts) > 1 for c in made if c.kind == "burst")
    assert any(c.parts == (b"",) for c in made if c.kind == "empty")


@pytest.mark.parametrize("target", [t for t in fuzz.TARGETS if t != "udp"])
def test_fuzz_rst_cases_stop_inside_the_message(all_cases, target: str) -> None:
    for case in all_cases[target]:
        if case.ending != fuzz.RST:
            assert case.sent == case.message
        elif len(case.message) >= 2 and case.cap is None:
            assert case.message.startswith(case.sent) and 0 < len(case.sent) < len(case.message)


# Commands that would wait (for stdin, a timer, a child) or run long: the
# generated commands must never hold one, or a case could take the 30 s limit.
BLOCKING = re.compile(rb"\b(sleep|cat|read|wait|yes|tail|ping|nc|top|watch)\b")


@pytest.mark.parametrize("target", ["exec-naive", "exec-handshake", "exec-framed"])
def test_fuzz_exec_commands_never_block(all_cases, target: str) -> None:
    chosen = [c for c in all_cases[target]
              if c.kind in ("shell-noise", "mutation", "partial-handshake", "oversized")]
    assert chosen
    for case in chosen:
        assert not BLOCKING.search(case.message), case.describe()


def test_fuzz_split_keeps_every_byte_in_order() -> None:
    rng = random.Random(3)
    for size in (0, 1, 2, 64, 65, 5000):
        data = rng.randbytes(size)
        for _ in range(20):
            parts = fuzz.split(rng, data)
            assert b"".join(parts) == data and all(parts)


def test_fuzz_framed_replies_counts_whole_frames_and_one_refusal() -> None:
    request = exec_framed.encode_request("true")
    assert fuzz.framed_replies(request * 2 + request[:3]) == 2
    assert fuzz.framed_replies(request + HEADER.pack(MAX_REQUEST_FRAME + 1)) == 2
    assert fuzz.framed_replies(b"") == 0


def select_like() -> fuzz.Target:
    return fuzz.TARGETS["select"]


def echo_case(ending: str, message: bytes = b"Mixed case \xff\x00 bytes") -> fuzz.Case:
    return fuzz.Case("select", 7, 0, "mutation", message, (message[:5], message[5:]), ending)


@pytest.mark.parametrize("ending", [fuzz.FIN, fuzz.HALF_CLOSE])
def test_fuzz_play_reads_the_whole_echo(socket_pair, background, log, ending: str) -> None:
    server, client = socket_pair
    background.start(serve_connection, server, UpperEcho(HELLO), log)
    case = echo_case(ending)
    outcome = fuzz.play(client, case, select_like(), read_timeout=5.0)
    assert (outcome.dropped, outcome.timed_out, outcome.complete) == (False, False, True)
    assert outcome.reply == HELLO + case.sent.upper()
    assert fuzz.judge(select_like(), case, outcome) is None


def test_fuzz_play_rst_ends_the_connection_at_once(socket_pair, background, log) -> None:
    server, client = socket_pair
    background.start(serve_connection, server, UpperEcho(HELLO), log)
    outcome = fuzz.play(client, echo_case(fuzz.RST), select_like(), read_timeout=5.0)
    assert (outcome.dropped, outcome.timed_out, outcome.complete) == (False, False, False)
    assert client.fileno() == -1


def test_fuzz_play_counts_a_server_close_as_dropped(socket_pair) -> None:
    server, client = socket_pair
    server.close()  # the server hangs up before the fuzzer is done
    outcome = fuzz.play(client, echo_case(fuzz.FIN), select_like(), read_timeout=1.0)
    assert outcome.dropped and not outcome.complete


def test_fuzz_play_timeout_is_the_fuzzers_not_a_failure(socket_pair) -> None:
    _server, client = socket_pair  # a server that reads nothing and says nothing
    outcome = fuzz.play(client, echo_case(fuzz.HALF_CLOSE), select_like(), read_timeout=0.2)
    assert (outcome.dropped, outcome.timed_out, outcome.complete) == (False, True, False)


def test_fuzz_judge_echo_names_a_wrong_byte() -> None:
    case = echo_case(fuzz.HALF_CLOSE)
    wrong = fuzz.Outcome(complete=True, reply=HELLO + case.sent)  # not upper-cased: "i" at 6
    assert "differs at byte 6" in (fuzz.judge(select_like(), case, wrong) or "")


def test_fuzz_judge_framed_wants_one_reply_per_request() -> None:
    target = fuzz.TARGETS["exec-framed"]
    request = exec_framed.encode_request("true")
    case = fuzz.Case("exec-framed", 7, 0, "mutation", request, (request,), fuzz.HALF_CLOSE)
    reply = b"".join(exec_framed.ExecReply(0, b"", b"").encode())
    assert fuzz.judge(target, case, fuzz.Outcome(complete=True, reply=reply)) is None
    assert fuzz.judge(target, case, fuzz.Outcome(complete=True, reply=b"")) is not None
    assert fuzz.judge(target, case, fuzz.Outcome(complete=True, reply=reply[:-1])) is not None


def test_fuzz_judge_ftp_skips_a_download_and_flags_a_500() -> None:
    target = fuzz.TARGETS["ftp"]
    case = fuzz.Case("ftp", 7, 0, "mutation", b"", (), fuzz.HALF_CLOSE)
    download = ftp.answer(ftp.OK, filename="a", filesize=3) + b"x\ny" + ftp.answer(404)
    good = fuzz.Outcome(complete=True, reply=fuzz.FTP_BANNER + download)
    assert fuzz.judge(target, case, good) is None
    bad = fuzz.Outcome(complete=True, reply=fuzz.FTP_BANNER + ftp.answer(ftp.SERVER_ERROR))
    assert "500" in (fuzz.judge(target, case, bad) or "")


def test_fuzz_judge_udp_wants_only_ok() -> None:
    assert fuzz.judge_udp(fuzz.Outcome(complete=True, reply=b"okok", answered=2)) is None
    assert fuzz.judge_udp(fuzz.Outcome(complete=True, reply=b"okno", answered=2)) is not None


def test_fuzz_case_description_is_json(all_cases) -> None:
    for target in fuzz.TARGETS:
        json.dumps([c.describe() for c in all_cases[target][:50]])


def test_fuzz_probe_is_registered() -> None:
    from socklab import probes

    assert "fuzz" in probes.PROBES and probes.load("fuzz") is fuzz
