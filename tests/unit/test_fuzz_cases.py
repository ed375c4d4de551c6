"""The fuzzer's cases: a pure function of (target, seed, index), past the caps they name."""

from __future__ import annotations

import hashlib
import json
import random
import re

import pytest

from socklab.probes.fuzz.cases import (
    PAST_CAP,
    SERVER_RECV,
    TCP_ENDINGS,
    Case,
    Ending,
    make_case,
    split,
)
from socklab.probes.fuzz.targets import TARGETS
from socklab.protocol import exec_framed, ftp
from socklab.protocol.framing import HEADER, MAX_REQUEST_FRAME
from socklab.registry import ECHO_OUTPUT_CAP, MAX_DATAGRAM
from socklab.servers.base import RECV_SIZE

CASES_PER_TARGET = 400


def cases(target: str, seed: int = 7, count: int = CASES_PER_TARGET) -> list[Case]:
    return [make_case(TARGETS[target], seed, index) for index in range(count)]


@pytest.fixture(scope="module")
def all_cases() -> dict[str, list[Case]]:
    return {target: cases(target) for target in TARGETS}


@pytest.mark.parametrize("target", list(TARGETS))
def test_fuzz_same_seed_gives_the_same_cases(target: str) -> None:
    first = cases(target, count=60)
    assert cases(target, count=60) == first
    assert [make_case(TARGETS[target], 7, i) for i in reversed(range(60))] == first[::-1]
    assert cases(target, seed=8, count=60) != first


# Cases as recorded: kind, ending, bytes sent and the start of their sha256.
# A seed and an index named in a report or in docs/exercises/10-fuzzing.md
# (ftp 500, exec-framed 63 and 975 of seed 7) must keep meaning the same bytes.
RECORDED = {
    ("ftp", 7, 500): ("wrong-json", Ending.HALF_CLOSE, 6125, "2dad1a9e4bb5b4d3"),
    ("ftp", 7, 578): ("wrong-json", Ending.FIN, 4559, "85cea9b359a6eed3"),
    ("exec-framed", 7, 63): ("wrong-json", Ending.HALF_CLOSE, 21328, "cc1ad93af126510d"),
    ("exec-framed", 7, 975): ("wrong-json", Ending.HALF_CLOSE, 33504, "ddaa7334d3dcc318"),
    ("exec-naive", 7, 5): ("random-bytes", Ending.HALF_CLOSE, 3996, "bf86f31522753b83"),
    ("exec-handshake", 7, 12): ("invalid-utf8", Ending.HALF_CLOSE, 42, "c026b501b3482882"),
    ("udp", 42, 3): ("random-bytes", Ending.DATAGRAMS, 54773, "7dd6792ab6cd7a9e"),
    ("tcp", 7, 21): ("mutation", Ending.HALF_CLOSE, 43, "1825e2cb5d023b35"),
    ("select", 1, 0): ("oversized", Ending.HALF_CLOSE, 4194356, "bc98b5154bb9547f"),
    ("epoll", 7, 30): ("oversized", Ending.HALF_CLOSE, 4194360, "55fa121b0e5f920f"),
    ("twisted", 7, 31): ("empty", Ending.FIN, 0, "e3b0c44298fc1c14"),
}


@pytest.mark.parametrize(("target", "seed", "index"), list(RECORDED))
def test_fuzz_recorded_cases_stay_the_same_bytes(target: str, seed: int, index: int) -> None:
    case = make_case(TARGETS[target], seed, index)
    digest = hashlib.sha256(case.sent).hexdigest()[:16]
    assert (case.kind, case.ending, len(case.sent), digest) == RECORDED[target, seed, index]


@pytest.mark.parametrize("target", list(TARGETS))
def test_fuzz_every_kind_and_ending_appears(all_cases, target: str) -> None:
    family = TARGETS[target].family
    made = all_cases[target]
    assert {c.kind for c in made} == {k.name for k in family.kinds}
    endings = {Ending.DATAGRAMS} if TARGETS[target].transport == "udp" else set(TCP_ENDINGS)
    assert {c.ending for c in made} == endings


def test_fuzz_server_recv_is_the_servers_read_size() -> None:
    assert SERVER_RECV == RECV_SIZE


# The cap each name stands for, taken from the code that enforces it.
SERVER_CAPS = {"RECV_SIZE": RECV_SIZE, "OUTPUT_CAP": ECHO_OUTPUT_CAP,
               "MAX_REQUEST_FRAME": MAX_REQUEST_FRAME, "MAX_REQUEST": ftp.MAX_REQUEST,
               "MAX_NAME_BYTES": ftp.MAX_NAME_BYTES,
               "DEFAULT_MAX_FILE_SIZE": ftp.DEFAULT_MAX_FILE_SIZE, "MAX_DATAGRAM": MAX_DATAGRAM}


def measured(case: Case) -> int:
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


@pytest.mark.parametrize("target", [t for t in TARGETS if t != "udp"])
def test_fuzz_oversized_cases_pass_their_cap(all_cases, target: str) -> None:
    capped = [c for c in all_cases[target] if c.kind in ("oversized", "huge-length")]
    assert capped
    for case in capped:
        assert case.cap is not None and case.cap.value == SERVER_CAPS[case.cap.name]
        assert measured(case) >= case.cap.value + 1, case.describe()
        if case.kind == "oversized":  # just past: by at most PAST_CAP
            assert measured(case) <= case.cap.value + PAST_CAP, case.describe()


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


@pytest.mark.parametrize("target", [t for t in TARGETS if t != "udp"])
def test_fuzz_rst_cases_stop_inside_the_message(all_cases, target: str) -> None:
    for case in all_cases[target]:
        if case.ending != Ending.RST:
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
            parts = split(rng, data)
            assert b"".join(parts) == data and all(parts)


def test_fuzz_case_description_is_json(all_cases) -> None:
    for target in TARGETS:
        described = json.loads(json.dumps([c.describe() for c in all_cases[target][:50]]))
        assert {d["ending"] for d in described} <= {e.value for e in Ending}
