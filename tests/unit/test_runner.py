"""The command runner over the real /bin/sh: output, status, time limit, output cap, user."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from socklab import runner
from socklab.runner import STATUS_CANNOT_RUN, CommandRunner, CommandSlots, RunAsRootError

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie left for an init that does not reap counts as dead)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def dies_soon(pid: int, within: float = 2.0) -> bool:
    """SIGKILL is delivered asynchronously: give the kernel a moment to finish the job."""
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize(("command", "status", "stdout", "stderr"), [
    (b"echo out", 0, b"out\n", b""),
    (b"echo err >&2; exit 3", 3, b"", b"err\n"),
    (b"echo a; echo b >&2", 0, b"a\n", b"b\n"),
    (b"printf 'x\\000y'", 0, b"x\x00y", b""),
    (b"exit 0", 0, b"", b""),
    (b"kill -9 $$", -9, b"", b""),
    (b"no-such-command-here", 127, b"", None),
])
def test_runner_reports_output_and_status(tmp_path: Path, command, status, stdout, stderr) -> None:
    result = CommandRunner(tmp_path, timeout=5).run(command)
    assert (result.status, result.stdout) == (status, stdout)
    assert (stderr is None and b"not found" in result.stderr) or result.stderr == stderr
    assert not result.truncated and not result.timed_out


def test_runner_runs_in_cwd_with_fixed_env(tmp_path: Path) -> None:
    result = CommandRunner(tmp_path, env={"EXTRA": "1"}, timeout=5).run(
        b'pwd; echo "$HOME|$EXTRA|$LANG"')
    assert result.stdout == f"{tmp_path}\n{tmp_path}|1|C.UTF-8\n".encode()


@pytest.mark.parametrize(("stdout", "stderr", "output"), [
    (b"o", b"e", b"o"), (b"", b"e", b"e"), (b"", b"", b"")])
def test_runner_result_output_prefers_stdout(stdout: bytes, stderr: bytes, output: bytes) -> None:
    assert runner.CommandResult(0, stdout, stderr).output == output


def test_runner_timeout_kills_whole_process_group(tmp_path: Path) -> None:
    started = time.monotonic()
    result = CommandRunner(tmp_path, timeout=0.5).run(b"sleep 30 & echo $! > bg.pid; sleep 30")
    assert time.monotonic() - started < 5
    assert result.timed_out and result.status == -9
    assert dies_soon(int((tmp_path / "bg.pid").read_text()))


def test_runner_timeout_holds_after_command_closes_its_pipes(tmp_path: Path) -> None:
    started = time.monotonic()
    result = CommandRunner(tmp_path, timeout=0.2).run(b"exec >/dev/null 2>&1; sleep 1.5")
    assert time.monotonic() - started < 1.0
    assert result.timed_out


@pytest.mark.parametrize(("command", "truncated"), [
    (b"yes", True), (b"head -c 1000 /dev/zero", False), (b"yes >&2", True)])
def test_runner_output_cap(tmp_path: Path, command: bytes, truncated: bool) -> None:
    started = time.monotonic()
    result = CommandRunner(tmp_path, output_cap=1000, timeout=10).run(command)
    assert time.monotonic() - started < 5
    assert result.truncated is truncated
    assert len(result.stdout or result.stderr) == 1000


@pytest.mark.parametrize("command", [b"echo a\x00b", b"\x00"])
def test_runner_nul_in_command_is_126_not_exception(tmp_path: Path, command: bytes) -> None:
    result = CommandRunner(tmp_path).run(command)
    assert result.status == STATUS_CANNOT_RUN and b"cannot run" in result.stderr


def test_runner_missing_cwd_is_126(tmp_path: Path) -> None:
    result = CommandRunner(tmp_path / "gone").run(b"true")
    assert result.status == STATUS_CANNOT_RUN


@as_root
@pytest.mark.parametrize("name", [None, "root"])
def test_runner_resolve_user_refuses_root(name: str | None) -> None:
    with pytest.raises(RunAsRootError):
        runner.resolve_user(name)


@as_root
def test_runner_resolve_user_nobody() -> None:
    assert runner.resolve_user("nobody") == 65534


@as_root
def test_runner_runs_as_given_uid() -> None:
    result = CommandRunner(Path("/"), uid=65534, timeout=5).run(b"id -u; id -G")
    assert result.stdout.split() == [b"65534", b"65534"]


def test_runner_kill_all_ends_running_commands(tmp_path: Path, background) -> None:
    command_runner = CommandRunner(tmp_path, timeout=30)
    results: list[runner.CommandResult] = []
    background.start(lambda: results.append(command_runner.run(b"sleep 20")))
    deadline = time.monotonic() + 5
    while not command_runner.running and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    command_runner.kill_all()
    while not results and time.monotonic() - started < 5:
        time.sleep(0.01)
    assert results and results[0].status == -9
    assert not command_runner.running


def test_runner_output_cap_counts_both_streams(tmp_path: Path) -> None:
    result = CommandRunner(tmp_path, output_cap=1000, timeout=10).run(b"yes & yes >&2; wait")
    assert result.truncated and result.status == -9
    assert len(result.stdout) + len(result.stderr) == 1000


def test_runner_output_exactly_at_cap_is_whole(tmp_path: Path) -> None:
    result = CommandRunner(tmp_path, output_cap=1000, timeout=10).run(
        b"head -c 600 /dev/zero; head -c 400 /dev/zero >&2")
    assert (len(result.stdout), len(result.stderr), result.truncated) == (600, 400, False)


def test_runner_commands_are_first_for_the_oom_killer(tmp_path: Path) -> None:
    result = CommandRunner(tmp_path, timeout=5).run(
        b"cat /proc/self/oom_score_adj; sh -c 'cat /proc/self/oom_score_adj'; echo $0")
    assert result.stdout.split() == [b"1000", b"1000", b"/bin/sh"]
    assert Path("/proc/self/oom_score_adj").read_text().strip() != "1000"  # not the server


# --- command slots ----------------------------------------------------------------------


def test_runner_slots_refuse_when_all_are_held(tmp_path: Path) -> None:
    command_runner = CommandRunner(tmp_path, timeout=5, slots=CommandSlots(1, wait=0.05))
    first = command_runner.run(b"echo first")
    busy = command_runner.run(b"touch ran")
    assert (busy.status, busy.busy, busy.stdout) == (STATUS_CANNOT_RUN, True, b"")
    assert busy.stderr.startswith(b"server busy: 1 commands") and busy.stderr.endswith(b"\n")
    assert not (tmp_path / "ran").exists()  # a busy command is not run
    first.release()
    with command_runner.run(b"echo second") as second:
        assert (second.stdout, second.busy) == (b"second\n", False)
    assert command_runner.run(b"echo third").stdout == b"third\n"  # the with released it


def test_runner_slots_hold_while_results_unreleased(tmp_path: Path) -> None:
    command_runner = CommandRunner(tmp_path, timeout=5, slots=CommandSlots(2, wait=0.05))
    held = [command_runner.run(b"true") for _ in range(2)]
    assert command_runner.run(b"true").busy
    held[0].release()
    held[0].release()  # a second release gives nothing back twice
    assert not command_runner.run(b"true").busy
    assert command_runner.run(b"true").busy


def test_runner_slot_waits_for_a_release(tmp_path: Path, background) -> None:
    command_runner = CommandRunner(tmp_path, timeout=5, slots=CommandSlots(1, wait=10))
    first = command_runner.run(b"true")
    results: list[runner.CommandResult] = []
    background.start(lambda: results.append(command_runner.run(b"echo waited")))
    first.release()
    background.join()
    assert results[0].stdout == b"waited\n" and not results[0].busy


@pytest.mark.parametrize("count", [0, -1])
def test_runner_slots_need_one(count: int) -> None:
    with pytest.raises(ValueError):
        CommandSlots(count)


def test_runner_cli_defaults_are_the_runner_defaults(tmp_path: Path) -> None:
    from socklab.cli import parser

    args = parser().parse_args(["serve", "exec"])
    slots = CommandSlots()
    assert (args.max_commands, args.slot_wait, args.timeout) == (
        slots.count, slots.wait, CommandRunner(tmp_path).timeout)
