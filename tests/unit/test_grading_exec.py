"""The exec checks' pure parts: frames, Ready headers, header verdicts, messages, the table.

No socket and no server: what a check sends and how it judges what came
(``socklab.grading.exec``), and the table it is scored by (``spec_exec``).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from socklab.grading import exec as ex
from socklab.grading import spec, spec_exec
from socklab.grading.echo import Target, Wrong
from socklab.grading.spec_exec import EXEC_CHECKS
from socklab.registry import EXEC_OUTPUT_CAP, EXEC_TIMEOUT, NAIVE_BANNER, VARIANTS

# --- frames ---------------------------------------------------------------------------


def test_a_frame_is_a_big_endian_length_then_the_bytes() -> None:
    assert ex.frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert ex.frame(b"") == b"\x00\x00\x00\x00"
    assert ex.request("echo hello") == ex.frame(b'{"cmd": "echo hello"}')


def test_split_frames_keeps_a_partial_frame_for_later() -> None:
    data = ex.frame(b"one") + ex.frame(b"") + ex.frame(b"three")
    assert ex.split_frames(data) == ([b"one", b"", b"three"], b"")
    assert ex.split_frames(data + b"\x00\x00") == ([b"one", b"", b"three"], b"\x00\x00")
    cut = ex.frame(b"a longer frame")[:9]
    assert ex.split_frames(cut) == ([], cut)
    assert ex.split_frames(b"") == ([], b"")


def test_three_pipelined_requests_are_three_frames_in_order() -> None:
    glued = b"".join(ex.request(c) for c, _ in ex.PIPELINED)
    frames, rest = ex.split_frames(glued)
    assert rest == b""
    assert [json.loads(f)["cmd"] for f in frames] == [c for c, _ in ex.PIPELINED]


# --- outputs of known size ------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, len(ex.LINE) - 1, len(ex.LINE), 100_000])
def test_lines_is_what_the_shell_prints(n: int) -> None:
    printed = subprocess.run(["/bin/sh", "-c", ex.lines_command(n)], capture_output=True,
                             check=True, timeout=30).stdout
    assert printed == ex.lines(n)
    assert len(ex.lines(n)) == n


def test_the_sizes_meet_the_spec() -> None:
    assert ex.BIG == 10 << 20
    assert ex.CAP_TEST > EXEC_OUTPUT_CAP == 32 << 20
    assert ex.lines(EXEC_OUTPUT_CAP) == ex.lines(ex.CAP_TEST)[:EXEC_OUTPUT_CAP]


# --- Ready headers --------------------------------------------------------------------


@pytest.mark.parametrize("data, header, rest", [
    (b"Ready|6|0", ex.Ready(6, 0), b""),
    (b"Ready|0|0", ex.Ready(0, 0), b""),
    (b"Ready|8|-9|timed-out", ex.Ready(8, -9, ("timed-out",)), b""),
    (b"Ready|33554432|-9|truncated", ex.Ready(33554432, -9, ("truncated",)), b""),
    (b"Ready|107|126|busy", ex.Ready(107, 126, ("busy",)), b""),
    (b"Ready|6|0hello\n", ex.Ready(6, 0), b"hello\n"),
])
def test_parse_ready(data: bytes, header: ex.Ready, rest: bytes) -> None:
    assert ex.parse_ready(data) == (header, rest)
    assert ex.header_done(data)


@pytest.mark.parametrize("data", [b"", b"Ready", b"Ready|6", b"Ready|6|", b"ready|6|0",
                                  b"hello\nReady|6|0", b"Ready|x|0"])
def test_no_header_is_none(data: bytes) -> None:
    assert ex.parse_ready(data) == (None, data)
    assert not ex.header_done(data)


def test_a_header_that_is_too_long_is_none() -> None:
    data = b"Ready|6|0" + b"|flag" * 12
    assert ex.parse_ready(data) == (None, data)


def test_an_expected_header_is_told_from_digits_sent_before_start() -> None:
    # 'id -u; id -g' sent behind its header: the status must not swallow the uid.
    data = b"Ready|10|01001\n1001\n"
    assert ex.parse_ready(data)[0] == ex.Ready(10, 1001)
    assert ex.parse_ready(data, (10, 0)) == (ex.Ready(10, 0), b"1001\n1001\n")
    assert ex.parse_ready(b"Ready|5|3|timed-out", (5, 3)) == (
        ex.Ready(5, 3, ("timed-out",)), b"")
    assert ex.parse_ready(b"Ready|6|1", (6, 0)) == (ex.Ready(6, 1), b"")  # not as expected


def test_a_header_says_itself() -> None:
    assert str(ex.Ready(6, 0)) == "Ready|6|0"
    assert str(ex.Ready(8, -9, ("timed-out",))) == "Ready|8|-9|timed-out"
    assert ex.ready_problem(ex.Ready(6, 0), 6, 0) is None
    assert ex.ready_problem(ex.Ready(6, 1), 6, 0) == "expected Ready|6|0; came Ready|6|1"


# --- framed reply headers -------------------------------------------------------------


def test_same_tells_json_types_apart() -> None:
    assert ex.same(0, 0) and ex.same(False, False) and ex.same(None, None)
    assert not ex.same(0, False) and not ex.same(False, 0)
    assert not ex.same(1, True) and not ex.same("0", 0) and not ex.same(0.0, 0)


def test_header_problem_names_every_wrong_field() -> None:
    expected = ex.reply_expected(b"hello\n")
    assert expected == {"exit_status": 0, "stdout_bytes": 6, "stderr_bytes": 0,
                        "truncated": False, "timed_out": False}
    assert ex.header_problem(dict(expected), expected) is None
    assert ex.header_problem({**expected, "extra": 1}, expected) is None  # more is fine
    header = {**expected, "exit_status": "0", "truncated": 0}
    del header["timed_out"]
    assert ex.header_problem(header, expected) == (
        '"exit_status" was "0", expected 0; "truncated" was 0, expected false; '
        '"timed_out" was (missing), expected false')


def test_framed_expect_says_what_was_sent_expected_and_came() -> None:
    header = ex.reply_expected(b"hello\n")
    ex.framed_expect("sent X", (header, b"hello\n", b""), b"hello\n")
    with pytest.raises(Wrong) as wrong:
        ex.framed_expect("sent X", ({**header, "stdout_bytes": 5}, b"hello", b""), b"hello\n")
    message = str(wrong.value)
    assert message.startswith("sent X; expected the header {")
    assert '"stdout_bytes" was 5, expected 6' in message
    assert "stdout: expected 6 B; 5 B came" in message


def test_an_error_reply_needs_a_reason_no_status_and_empty_frames() -> None:
    good = {"exit_status": None, "stdout_bytes": 0, "stderr_bytes": 0, "truncated": False,
            "timed_out": False, "error": "request is not valid UTF-8 JSON"}
    assert ex.error_problem(good, b"", b"") is None
    assert ex.error_problem({"error": "no", "stdout_bytes": 0, "stderr_bytes": 0}, b"",
                            b"") is None  # a missing exit_status is no status
    problem = ex.error_problem({**good, "error": "", "exit_status": 2}, b"", b"")
    assert problem == ('"error" was "", expected a string saying why; "exit_status" was 2, '
                       "expected null (nothing ran)")
    problem = ex.error_problem({**good, "stderr_bytes": 4}, b"", b"oops")
    assert problem == ("stderr: expected an empty frame and \"stderr_bytes\": 0; came "
                       "b'oops' and 4")


def test_every_bad_request_is_one_the_spec_refuses() -> None:
    from socklab.protocol import exec_framed
    from socklab.protocol.errors import RemoteProtocolError

    for payload, _ in ex.BAD_REQUESTS:
        with pytest.raises(RemoteProtocolError):
            exec_framed.decode_request(payload)


# --- ports ----------------------------------------------------------------------------


def test_port_moves_all_three_by_the_offset_of_the_main_one() -> None:
    lab = Target.of("exec")
    assert [ex.port_of(lab, f) for f in ex.FRAMINGS] == [9000, 9001, 9002]
    published = Target.of("exec", "127.0.0.1", 19100)
    assert [ex.port_of(published, f) for f in ex.FRAMINGS] == [19100, 19101, 19102]
    assert ex.where(published, "framed") == "port 19102 (framed)"


def test_command_for_each_port() -> None:
    assert ex.command_for("naive", "ls") == b"ls"
    assert ex.command_for("handshake", "ls") == b"ls"
    assert ex.command_for("framed", "ls") == ex.request("ls")


# --- the fuzzer's naive family with a free banner ---------------------------------------


def test_the_learners_naive_family_takes_any_banner_line() -> None:
    family = ex.learner_naive(Target.of("exec").variant)
    sent, silent = SimpleNamespace(sent=b"ls"), SimpleNamespace(sent=b"")
    assert family.reply_done(silent)(bytearray(b"my banner\n"))
    assert not family.reply_done(sent)(bytearray(b"my banner\n"))
    assert family.reply_done(sent)(bytearray(b"my banner\nx"))
    assert not family.reply_done(silent)(bytearray(b"my bann"))
    assert family.judge(silent, SimpleNamespace(reply=b"hi!\n")) is None
    assert family.judge(silent, SimpleNamespace(reply=NAIVE_BANNER)) is None
    assert family.judge(silent, SimpleNamespace(reply=b"no line")) is not None


# --- the table ------------------------------------------------------------------------


def test_the_table_has_a_body_for_every_check_but_performance() -> None:
    ids = [c.id for c in EXEC_CHECKS]
    assert spec.checks("exec") == EXEC_CHECKS
    assert len(ids) == len(set(ids))
    assert [i for i in ids if i not in ex.CHECKS] == ["performance.throughput"]
    assert set(ex.CHECKS) <= set(ids)
    assert ids[-1] == "performance.throughput"


def test_the_texts_take_the_ports_the_cap_and_the_limit_from_the_registry() -> None:
    # One fact, one place: spec_exec writes no port, cap or limit of its own...
    source = Path(spec_exec.__file__).read_text(encoding="utf-8")
    assert not re.search(r"\b900[0-9]\b|\b32 MiB\b|\b30 s\b", source)
    # ...and its texts name every port the registry gives exec, and no other.
    text = " ".join(f"{c.title} {c.hint}" for c in EXEC_CHECKS)
    assert {int(p) for p in re.findall(r"\b9\d{3}\b", text)} == set(
        VARIANTS["exec"].ports.values())
    by_id = {c.id: c for c in EXEC_CHECKS}
    assert f"{EXEC_OUTPUT_CAP >> 20} MiB" in by_id["security.output-cap"].title
    assert f"{EXEC_TIMEOUT:.0f} s limit" in by_id["security.time-limit"].title


def test_the_categories_are_all_there_and_in_order() -> None:
    order = [spec.CATEGORIES.index(c.category) for c in EXEC_CHECKS]
    assert {c.category for c in EXEC_CHECKS} == set(spec.CATEGORIES)
    assert order[:4] == [0, 0, 0, 0] and order[-1] == spec.CATEGORIES.index("performance")


def test_the_host_judges_the_resources_by_samples() -> None:
    sampled = {c.id for c in EXEC_CHECKS if c.sample}
    assert sampled == {"resources.fd-leak", "resources.threads"}


def test_budgets_cover_the_time_limit_and_the_fuzzer() -> None:
    by_id = {c.id: c for c in EXEC_CHECKS}
    limit = by_id["security.time-limit"].budget
    assert EXEC_TIMEOUT + ex.TIME_SLACK[1] + 5 <= limit <= 60
    assert by_id["robustness.fuzz"].budget >= 90
    assert all(c.budget <= 120 for c in EXEC_CHECKS)


def test_points_are_like_the_echo_tables() -> None:
    total = sum(c.points for c in EXEC_CHECKS)
    perf = sum(c.points for c in EXEC_CHECKS if c.category == "performance")
    assert 80 <= total <= 110 and perf == 5
    assert all(3 <= c.points <= 10 for c in EXEC_CHECKS)
