"""conformance.tutorial-client without a network: the harness that runs `socklab client`
in-process, the reading of what it showed, the judges, and each family's body against a
client that is faked (what the lab's client prints for a correct or a wrong server).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from socklab.grading import echo, spec, tutorial, udp
from socklab.grading import exec as ex
from socklab.grading import ftp as ftp_checks
from socklab.grading.echo import Target, Wrong
from socklab.grading.run import BODIES
from socklab.registry import VARIANTS

ID = "conformance.tutorial-client"


# --- the spec ------------------------------------------------------------------------


@pytest.mark.parametrize("variant", spec.GRADED)
def test_every_variant_has_the_check_among_its_conformance_and_a_body(variant: str) -> None:
    checks = spec.checks(variant)
    ids = [c.id for c in checks]
    assert ID in ids
    check = spec.check(variant, ID)
    assert 2 <= check.points <= 5
    assert ids.index(ID) == max(i for i, c in enumerate(checks) if c.category == "conformance")
    assert ID in BODIES.get(variant, echo.CHECKS)
    assert spec.PAGES[check.page].startswith("docs/exercises/1")  # the family's own page
    assert "socklab client" in check.title


def test_the_typed_lines_are_what_a_terminal_can_take_and_the_judges_can_join() -> None:
    for line in (*echo.TYPED, *udp.TYPED):
        assert line and "\n" not in line and tutorial.PROMPT not in line
        assert line.strip() != "exit"
    assert max(len(line.encode()) for line in echo.TYPED) > 1024  # past the tutorial's recv
    assert len(echo.TYPED[-1]) < 100  # a short last line: its answer comes in one piece


# --- the harness ---------------------------------------------------------------------


def repl(prompt: str = ">>> ", greeting: str = "", answer: Callable[[str], str] = str.upper,
         status: int = 0) -> Callable[[Sequence[str]], int]:
    """A fake `socklab client` main that behaves like the lab's interactive clients."""
    def main(argv: Sequence[str]) -> int:
        if greeting:
            print(greeting)
        while True:
            try:
                line = input(prompt)
            except EOFError:
                break
            if line.strip() == "exit":
                break
            print(answer(line))
        return status
    return main


def test_run_client_types_the_lines_keeps_what_was_shown_and_restores_the_process(
        tmp_path: Path) -> None:
    streams, here = (sys.stdin, sys.stdout, sys.stderr), os.getcwd()
    seen: list[Sequence[str]] = []

    def main(argv: Sequence[str]) -> int:
        seen.append(argv)
        print(os.getcwd())
        print("oops", file=sys.stderr)
        return repl(greeting="hello")(argv)

    shown = tutorial.run_client(["select", "--host", "h"], ["abc", "exit"], seconds=5,
                                cwd=tmp_path, main=main)
    assert seen == [["client", "select", "--host", "h"]]
    assert shown.command == "socklab client select --host h"
    assert shown.status == 0 and shown.stderr == "oops\n"
    assert shown.stdout == f"{tmp_path}\nhello\n>>> ABC\n>>> "
    assert ("in", "abc\n") in shown.events
    assert (sys.stdin, sys.stdout, sys.stderr) == streams and os.getcwd() == here


def test_run_client_ends_a_client_that_waits_at_its_deadline() -> None:
    def main(argv: Sequence[str]) -> int:
        print("hello")
        time.sleep(30)
        return 0

    started = time.monotonic()
    shown = tutorial.run_client(["tcp"], seconds=0.3, main=main)
    assert time.monotonic() - started < 5
    assert shown.status is None and shown.stdout == "hello\n"


def test_a_command_line_is_quoted_as_a_shell_takes_it() -> None:
    assert tutorial.command_line(["exec", "-c", "echo oops >&2; exit 3"]) == (
        "socklab client exec -c 'echo oops >&2; exit 3'")


# --- reading what was shown ----------------------------------------------------------


def events(*parts: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return parts


def test_screens_are_cut_at_each_line_typed_with_the_prompts_dropped() -> None:
    shown = events(("out", "hello"), ("out", "\n"), ("out", ">>> "), ("in", "a\n"),
                   ("out", "A"), ("out", "\n"), ("out", ">>> "), ("in", "exit\n"))
    assert tutorial.screens(shown) == ["hello\n", "A\n", ""]
    assert tutorial.joined(shown) == "helloA"


def test_an_answer_shown_in_two_pieces_joins_up_again() -> None:
    # The greeting came in two segments; the second was shown with the first answer.
    shown = events(("out", "hel"), ("out", "\n"), ("out", ">>> "), ("in", "ab\n"),
                   ("out", "loA"), ("out", "\n"), ("out", ">>> "), ("in", "cd\n"),
                   ("out", "BCD"), ("out", "\n"), ("out", ">>> "), ("in", "exit\n"))
    assert tutorial.joined(shown) == "helloABCD"


def test_what_the_server_sends_is_never_dropped_as_a_prompt() -> None:
    # A server that answers with the prompt's own text, then a newline of its own.
    shown = events(("out", ">>> "), ("in", "a\n"), ("out", ">>> "), ("out", "\n"),
                   ("out", ">>> "), ("in", "exit\n"))
    assert tutorial.joined(shown) == ">>> "
    shown = events(("out", ">>> "), ("in", "a\n"), ("out", "A\n"), ("out", "\n"),
                   ("out", ">>> "), ("in", "exit\n"))
    assert tutorial.joined(shown) == "A\n"


def shown_as(stdout: str = "", stderr: str = "", status: int | None = 0,
             typed: Sequence[str] = (), evts: Sequence[tuple[str, str]] = ()) -> tutorial.Shown:
    return tutorial.Shown("socklab client tcp", tuple(typed), tuple(evts) or (("out", stdout),),
                          stdout, stderr, status, 15.0)


def test_ending_says_what_the_client_was_waiting_for() -> None:
    shown = shown_as(">>> HELLO\n>>> ", status=None,
                     evts=[("out", ">>> "), ("in", "hello\n"), ("out", "HELLO"),
                           ("out", "\n"), ("out", ">>> "), ("in", "again\n")])
    with pytest.raises(Wrong) as wrong:
        tutorial.ending(shown, "ran it")
    assert wrong.value.status == "timeout"
    assert "after 15 s the client was still waiting for the server after 'again' was typed" \
        in str(wrong.value)
    assert "'>>> HELLO\\n>>> '" in str(wrong.value)


def test_ending_wants_the_status_and_the_stderr_given() -> None:
    tutorial.ending(shown_as("x", "oops\n", 3), "ran it", 3, "oops\n")
    with pytest.raises(Wrong, match=r"expected the client to end with exit status 0 and "
                       r"nothing on stderr; it ended with exit status 1.*socklab client: "
                       r"timed out"):
        tutorial.ending(shown_as("", "socklab client: timed out\n", 1), "ran it")
    with pytest.raises(Wrong, match="exit status 3 and 'oops\\\\n' on stderr"):
        tutorial.ending(shown_as("", "", 3), "ran it", 3, "oops\n")


def test_showing_names_the_first_difference_and_quotes_the_screen() -> None:
    tutorial.showing(shown_as("AB"), "ran it", "the answers", "AB", "AB")
    with pytest.raises(Wrong) as wrong:
        tutorial.showing(shown_as(">>> Ab\n"), "ran it", "the answers", "AB", "Ab")
    message = str(wrong.value)
    assert message.startswith("ran it; expected it to show the answers: 'AB'; ")
    assert "First difference at byte 1: expected b'B', came b'b'" in message
    assert message.endswith("It showed '>>> Ab\\n'")


def test_a_long_screen_is_cut_in_a_message() -> None:
    assert len(shown_as("x" * 10_000).said()) < 300


# --- each family's body, its client faked --------------------------------------------


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[..., int]], list]:
    """Install a fake `socklab client` main; the argv of each run is recorded."""
    def install(main: Callable[..., int]) -> list:
        runs: list = []

        def record(argv: Sequence[str]) -> int:
            runs.append(list(argv))
            return main(argv)
        monkeypatch.setattr(tutorial, "_cli_main", record)
        return runs
    return install


@pytest.mark.parametrize("variant", ["tcp", "select", "epoll", "twisted"])
def test_the_echo_client_passes_a_correct_server(fake_client: Callable, variant: str) -> None:
    v = VARIANTS[variant]

    def answer(line: str) -> str:
        return v.transform(line.encode()).decode()
    runs = fake_client(repl(greeting=v.greeting.decode(), answer=answer))
    echo.tutorial_client(Target.of(variant, "127.0.0.1", 19000))
    assert runs == [["client", variant, "--host", "127.0.0.1", "--port", "19000"]]


def test_the_echo_client_fails_a_server_that_answers_in_the_wrong_case(
        fake_client: Callable) -> None:
    fake_client(repl(greeting="hello", answer=str.lower))
    with pytest.raises(Wrong) as wrong:
        echo.tutorial_client(Target.of("select", "127.0.0.1"))
    message = str(wrong.value)
    port = VARIANTS["select"].ports["echo"]
    assert message.startswith(f"ran `socklab client select --host 127.0.0.1 --port {port}` and "
                              "typed 4 lines ('hello', ")
    assert "expected it to show the greeting b'hello', then each line's answer" in message
    assert "First difference at byte 5: expected b'HELLO" in message


def test_the_echo_client_fails_a_server_that_greets_unasked(fake_client: Callable) -> None:
    fake_client(repl(greeting="hello", answer=lambda line: line))
    with pytest.raises(Wrong) as wrong:
        echo.tutorial_client(Target.of("twisted", "127.0.0.1"))
    assert "First difference at byte 5: expected b'\\xe4" in str(wrong.value)
    assert "came b'hello\\xe4" in str(wrong.value)


def test_the_echo_client_forgives_answers_cut_anywhere(fake_client: Callable) -> None:
    # The greeting, then every answer, as one stream cut at other places than the lines:
    # each piece shown one prompt later than a server that sends whole answers would.
    stream = "hello" + "".join(line.upper() for line in echo.TYPED)
    cuts = [3, 9, 60, 700, len(stream)]
    pieces = [stream[a:b] for a, b in zip([0, *cuts], cuts, strict=False)]

    def main(argv: Sequence[str]) -> int:
        print(pieces[0])
        for piece in pieces[1:]:
            input(">>> ")
            print(piece)
        input(">>> ")
        return 0
    assert len(pieces) == len(echo.TYPED) + 1
    fake_client(main)
    echo.tutorial_client(Target.of("select", "127.0.0.1"))


UDP_ANSWER = f"(b'ok', ('127.0.0.1', {VARIANTS['udp'].ports['datagram']}))"
NO_ANSWER = "(no answer within 5 s: UDP does not retransmit)"


def udp_repl(answers: list[str]) -> Callable[[Sequence[str]], int]:
    def main(argv: Sequence[str]) -> int:
        while True:
            try:
                line = input("data: ")
            except EOFError:
                return 0
            if line == "exit":
                return 0
            print(answers.pop(0))
    return main


def test_the_udp_client_types_again_once_when_an_answer_is_lost(fake_client: Callable) -> None:
    runs = fake_client(udp_repl([UDP_ANSWER, NO_ANSWER, UDP_ANSWER, UDP_ANSWER]))
    udp.tutorial_client(Target.of("udp", "127.0.0.1"))
    assert len(runs) == 2


def test_the_udp_client_fails_when_the_answers_never_come(fake_client: Callable) -> None:
    runs = fake_client(udp_repl([NO_ANSWER] * 4))
    with pytest.raises(Wrong, match=r"then exit \(2 times\); expected it to show each "
                       "datagram's answer"):
        udp.tutorial_client(Target.of("udp", "127.0.0.1"))
    assert len(runs) == udp.CLIENT_TRIES


def test_the_udp_client_fails_an_answer_from_elsewhere_at_once(fake_client: Callable) -> None:
    runs = fake_client(udp_repl(["(b'ok', ('127.0.0.1', 40000))"] * 2))
    with pytest.raises(Wrong, match="40000"):
        udp.tutorial_client(Target.of("udp", "127.0.0.1"))
    assert len(runs) == 1


def test_what_the_exec_client_prints_for_the_commands() -> None:
    handshake, framed = ex.CLIENT_RUNS
    stdout, stderr = ex.client_expected(*handshake)
    assert stdout.startswith("message size 8893 recv size 8893\n1\n2\n3\n")
    assert stdout.endswith("2000\nmessage size 0 recv size 0\nmessage size 5 recv size 5\n"
                           "oops\n")
    assert stderr == ""
    assert ex.client_expected(*framed) == ("hello\n", "oops\n[exit status 3]\n")
    assert len(ex.SEQ) == 8893


def test_the_exec_client_runs_both_framings_on_their_ports(fake_client: Callable) -> None:
    def main(argv: Sequence[str]) -> int:
        framing = argv[argv.index("--mode") + 1]
        run = next(r for r in ex.CLIENT_RUNS if r[0] == framing)
        stdout, stderr = ex.client_expected(*run)
        sys.stdout.write(stdout)
        sys.stderr.write(stderr)
        return run[2]
    runs = fake_client(main)
    ex.tutorial_client(Target.of("exec", "127.0.0.1", 19100))
    assert [r[r.index("--port") + 1] for r in runs] == ["19101", "19102"]
    assert runs[0][-6:] == ["-c", "seq 1 2000", "-c", "true", "-c", "echo oops >&2; exit 3"]


def test_the_exec_client_fails_a_handshake_that_sends_the_output_early(
        fake_client: Callable) -> None:
    def main(argv: Sequence[str]) -> int:
        print("socklab client: Ready header longer than 64 bytes", file=sys.stderr)
        return 1
    fake_client(main)
    handshake = VARIANTS["exec"].ports["handshake"]
    with pytest.raises(Wrong, match=rf"\(port {handshake} \(handshake\)\); expected the "
                       "client to end with exit status 3 and nothing on stderr; it ended "
                       "with exit status 1"):
        ex.tutorial_client(Target.of("exec", "127.0.0.1"))


def test_the_ftp_client_screens_are_read_as_it_prints_them() -> None:
    screen = ("file: up/x size: 5\n{'status': 201, 'filename': 'x', 'filesize': 5, "
              "'sha256': 'ab', 'ok': True, 'n': None}\n")
    assert ftp_checks.put_answer(screen)["status"] == 201
    assert ftp_checks.put_answer("file: up/x size: 5\n{'status': 2") is None
    assert ftp_checks.put_answer("{__import__('os')}") is None
    assert ftp_checks.listed("           5  x\n      200000  y\n", "y", 200_000)
    assert not ftp_checks.listed("      200000  yy\n", "y", 200_000)


def ftp_repl(put_status: int = 201, save: bool = True) -> Callable[[Sequence[str]], int]:
    """The lab's ftp prompt as it prints, for a server that answers a put with put_status."""
    def main(argv: Sequence[str]) -> int:
        print("Welcome")
        print("commands: put PATH…, get NAME…, ls, exit")
        status = 0
        while (line := input(">>> ")) != "exit":
            verb, *args = line.split()
            if verb == "put":
                data = Path(args[0]).read_bytes()
                print(f"file: {args[0]} size: {len(data)}")
                print({"status": put_status, "filesize": len(data)})
                saved = data
            elif verb == "ls":
                print(f"{1000:>12}  grade-list-a.txt")
                print(f"{len(saved):>12}  {ftp_checks.CLIENT_FILE}")
            elif save:
                Path(args[0]).write_bytes(saved)
                print(f"saved {args[0]} ({len(saved)} bytes)")
        return status
    return main


def test_the_ftp_client_passes_a_correct_server_and_cleans_up(fake_client: Callable) -> None:
    runs = fake_client(ftp_repl())
    here = os.getcwd()
    ftp_checks.tutorial_client(Target.of("ftp", "127.0.0.1"))
    port = str(VARIANTS["ftp"].ports["ftp"])
    assert runs == [["client", "ftp", "--host", "127.0.0.1", "--port", port]]
    assert os.getcwd() == here


def test_the_ftp_client_fails_a_put_not_answered_201(fake_client: Callable) -> None:
    fake_client(ftp_repl(put_status=200))
    with pytest.raises(Wrong) as wrong:
        ftp_checks.tutorial_client(Target.of("ftp", "127.0.0.1"))
    assert ("expected the put to end with status 201; the client printed \"file: "
            "up/grade-tutorial-client.bin size: 200000\\n{'status': 200") in str(wrong.value)


def test_the_ftp_client_fails_a_get_that_saved_nothing(fake_client: Callable) -> None:
    fake_client(ftp_repl(save=False))
    with pytest.raises(Wrong, match="expected the get to save the 200,000 B put; came no file"):
        ftp_checks.tutorial_client(Target.of("ftp", "127.0.0.1"))
