"""The families' judges and health checks: a wrong answer named, a right one passed."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from socklab.probes.fuzz.cases import Case, Ending
from socklab.probes.fuzz.families import Framed
from socklab.probes.fuzz.judging import check_health, judge
from socklab.probes.fuzz.play import Outcome
from socklab.probes.fuzz.targets import TARGETS
from socklab.protocol import exec_framed, ftp
from socklab.protocol.framing import HEADER, MAX_REQUEST_FRAME
from socklab.servers.base import serve_connection
from socklab.sessions import Session
from socklab.sessions.echo import UpperEcho

SELECT = TARGETS["select"]


def whole(reply: bytes, answered: int = 0) -> Outcome:
    return Outcome(complete=True, reply=reply, answered=answered)


def a_case(target: str, message: bytes = b"Mixed case \xff\x00 bytes") -> Case:
    return Case(target, 7, 0, "mutation", message, (message[:5], message[5:]), Ending.HALF_CLOSE)


def test_fuzz_judge_echo_names_a_wrong_byte() -> None:
    case = a_case("select")
    wrong = whole(SELECT.variant.greeting + case.sent)  # not upper-cased: "i" at 6
    assert "differs at byte 6" in (judge(SELECT.family, case, wrong) or "")
    right = whole(SELECT.variant.greeting + case.sent.upper())
    assert judge(SELECT.family, case, right) is None


def test_fuzz_judge_leaves_a_reply_not_read_whole() -> None:
    case = a_case("select")
    assert judge(SELECT.family, case, Outcome(complete=False, reply=b"x")) is None


def test_fuzz_framed_replies_owed_counts_whole_frames_and_one_refusal() -> None:
    family = TARGETS["exec-framed"].family
    assert isinstance(family, Framed)
    request = exec_framed.encode_request("true")
    assert family.replies_owed(request * 2 + request[:3]) == 2
    assert family.replies_owed(request + HEADER.pack(MAX_REQUEST_FRAME + 1)) == 2
    assert family.replies_owed(b"") == 0


def test_fuzz_judge_framed_wants_one_reply_per_request() -> None:
    family = TARGETS["exec-framed"].family
    request = exec_framed.encode_request("true")
    case = Case("exec-framed", 7, 0, "mutation", request, (request,), Ending.HALF_CLOSE)
    reply = b"".join(exec_framed.ExecReply(0, b"", b"").encode())
    assert judge(family, case, whole(reply)) is None
    assert judge(family, case, whole(b"")) is not None
    assert judge(family, case, whole(reply[:-1])) is not None


def test_fuzz_judge_ftp_skips_a_download_and_flags_a_500() -> None:
    family = TARGETS["ftp"].family
    case = Case("ftp", 7, 0, "mutation", b"", (), Ending.HALF_CLOSE)
    banner = TARGETS["ftp"].variant.banner()
    download = ftp.answer(ftp.OK, filename="a", filesize=3) + b"x\ny" + ftp.answer(404)
    assert judge(family, case, whole(banner + download)) is None
    assert "500" in (judge(family, case, whole(banner + ftp.answer(ftp.SERVER_ERROR))) or "")
    assert "no banner" in (judge(family, case, whole(download)) or "")


def test_fuzz_judge_naive_and_handshake_want_their_first_bytes() -> None:
    naive, handshake = TARGETS["exec-naive"], TARGETS["exec-handshake"]
    banner = naive.variant.banner("naive")
    assert judge(naive.family, a_case("exec-naive"), whole(banner + b"out\n")) is None
    assert judge(naive.family, a_case("exec-naive"), whole(b"out\n")) is not None
    assert judge(handshake.family, a_case("exec-handshake"), whole(b"Ready|3|0")) is None
    assert judge(handshake.family, a_case("exec-handshake"), whole(b"")) is None
    assert judge(handshake.family, a_case("exec-handshake"), whole(b"oops")) is not None


def test_fuzz_judge_udp_wants_only_the_ack() -> None:
    family, case = TARGETS["udp"].family, a_case("udp")
    ack = TARGETS["udp"].variant.transform(b"anything")
    assert judge(family, case, whole(ack * 2, answered=2)) is None
    assert judge(family, case, whole(ack + b"no", answered=2)) is not None


def serve_once(listener: socket.socket, session: Session, log: logging.Logger) -> None:
    conn, _ = listener.accept()
    with conn:
        serve_connection(conn, session, log)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def test_fuzz_echo_health_check_passes_a_right_server(listener, background, log) -> None:
    background.start(serve_once, listener, UpperEcho(SELECT.variant.greeting), log)
    assert check_health(SELECT.family, "127.0.0.1", listener.getsockname()[1], 3) is None


def test_fuzz_echo_health_check_names_a_wrong_greeting(listener, background, log) -> None:
    wrong = SELECT.variant.greeting.upper()
    background.start(serve_once, listener, UpperEcho(wrong), log)
    error = check_health(SELECT.family, "127.0.0.1", listener.getsockname()[1], 3)
    assert error is not None and error.startswith("HealthError: greeting")


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


@pytest.mark.parametrize("target", [t for t in TARGETS if TARGETS[t].transport == "tcp"])
def test_fuzz_health_check_reports_a_refused_connection(target: str) -> None:
    error = check_health(TARGETS[target].family, "127.0.0.1", closed_port(), 1)
    assert error is not None and error.startswith("ConnectionRefusedError")
