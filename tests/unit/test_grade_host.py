"""The host grader's pure parts: submissions, the kernel's listening table, verdicts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from socklab.grading import spec
from socklab.host.grade import grader, procfs
from socklab.host.grade.lab import not_ready_reason
from socklab.host.grade.submission import REFERENCE, SubmissionError, classify, stage

# /proc/net/tcp as the kernel writes it: a listener on 127.0.0.1:9000 (0x2328), one on
# 0.0.0.0:8000 (0x1F40), and an established connection on 9000.
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2328 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1
   1: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2 1
   2: 0200170A:2328 0300170A:D431 01 00000000:00000000 00:00000000 00000000  1000        0 3 1
"""
# /proc/net/tcp6: a listener on [::]:9000 and one on [::1]:8000.
TCP6 = """\
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:2328 00000000000000000000000000000000:0000 0A
   1: 00000000000000000000000001000000:1F40 00000000000000000000000000000000:0000 0A
"""


def test_listening_addresses_are_read_from_the_kernels_table() -> None:
    assert procfs.bound(TCP, 9000, procfs.LISTEN) == ["127.0.0.1"]
    assert procfs.bound(TCP, 8000, procfs.LISTEN) == ["0.0.0.0"]
    assert procfs.bound(TCP, 9999, procfs.LISTEN) == []
    assert procfs.bound(TCP6, 9000, procfs.LISTEN) == [
        "0000:0000:0000:0000:0000:0000:0000:0000"]
    assert procfs.bound(TCP6, 8000, procfs.LISTEN) == [
        "0000:0000:0000:0000:0000:0000:0000:0001"]


def test_loopback_only_is_told_apart_from_ready() -> None:
    only_loopback = procfs.Listening(9000, ("127.0.0.1",))
    assert only_loopback.loopback_only and not only_loopback.ready
    ipv6_loopback = procfs.Listening(8000, ("0000:0000:0000:0000:0000:0000:0000:0001",))
    assert ipv6_loopback.loopback_only
    everywhere = procfs.Listening(9000, ("127.0.0.1", "0.0.0.0"))
    assert everywhere.ready and not everywhere.loopback_only
    assert not procfs.Listening(9000, ()).loopback_only


def test_the_loopback_diagnosis_names_the_address_and_the_fix() -> None:
    reason = not_ready_reason([procfs.Listening(9000, ("127.0.0.1",))], 10.0, "tcp")
    assert "127.0.0.1:9000 only" in reason and "0.0.0.0" in reason
    silent = not_ready_reason([procfs.Listening(9999, ())], 10.0, "udp")
    assert "nothing was bound to port 9999 after 10 s" in silent


def test_a_python_file_runs_with_python3(tmp_path: Path) -> None:
    server = tmp_path / "my server.py"
    server.write_text("print('hi')\n")
    server.chmod(0o600)  # a learner's private file still starts: the copy is readable
    staged = stage(str(server))
    try:
        assert (staged.kind, staged.argv, staged.name) == ("python", ("python3", "my server.py"),
                                                          "my server")
        copy = staged.staged / "my server.py"  # type: ignore[operator]
        assert stat.S_IMODE(copy.stat().st_mode) == 0o644
        assert stat.S_IMODE(staged.staged.stat().st_mode) == 0o755  # type: ignore[union-attr]
        assert oct(stat.S_IMODE(server.stat().st_mode)) == oct(0o600)  # original untouched
    finally:
        staged.cleanup()
    assert not staged.staged.exists()  # type: ignore[union-attr]


def test_a_directory_needs_main_py(tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("")
    with pytest.raises(SubmissionError, match=r"without main\.py"):
        classify(tmp_path)
    (tmp_path / "main.py").write_text("")
    assert classify(tmp_path) == ("directory", ("python3", "main.py"))


def test_an_executable_runs_as_itself_and_other_files_are_refused(tmp_path: Path) -> None:
    binary = tmp_path / "server"
    binary.write_bytes(b"\x7fELF" + bytes(60))
    assert classify(binary) == ("executable", ("./server",))
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\nexec python3 x.py\n")
    with pytest.raises(SubmissionError, match="neither"):
        classify(script)  # no executable bit
    script.chmod(0o755)
    assert classify(script) == ("executable", ("./run.sh",))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(SubmissionError, match="neither a Python file"):
        classify(text)
    with pytest.raises(SubmissionError, match="no such file"):
        classify(tmp_path / "missing.py")


def test_the_content_hash_changes_with_the_content_only(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for directory in (first, second):
        directory.mkdir()
        (directory / "main.py").write_text("print(1)\n")
    one, two = stage(str(first)), stage(str(second))
    assert one.sha256 == two.sha256  # the same files under another directory name
    (second / "main.py").write_text("print(2)\n")
    three = stage(str(second))
    assert three.sha256 != one.sha256
    for staged in (one, two, three):
        staged.cleanup()


def test_the_reference_is_not_staged() -> None:
    reference = stage(REFERENCE)
    assert (reference.kind, reference.staged, reference.argv) == (REFERENCE, None, ())


def _sample(threads: int = 1, fds: int = 6, rss: int = 20 << 20) -> procfs.Sample:
    return procfs.Sample(pid=7, threads=threads, fds=fds, rss=rss, hwm=rss)


def test_sample_verdicts() -> None:
    judge = grader.judge_samples
    assert judge("resources.fd-leak", _sample(fds=6), {}, _sample(fds=16)) is None
    leak = judge("resources.fd-leak", _sample(fds=6), {}, _sample(fds=306))
    assert leak is not None and "300 left open" in leak
    assert judge("concurrency.one-thread", None, {"threads": 1}, None) is None
    threads = judge("concurrency.one-thread", None, {"threads": 51}, None)
    assert threads is not None and "51 threads" in threads
    grown = judge("resources.threads", _sample(threads=1), {}, _sample(threads=101))
    assert grown is not None and "101 after" in grown
    assert judge("resources.memory", _sample(), {"rss": 200 << 20}, _sample()) is not None
    assert judge("resources.memory", _sample(), {"rss": 40 << 20}, _sample()) is None
    assert judge("conformance.echo", _sample(), {"threads": 9}, _sample(fds=999)) is None


def test_a_death_says_how_and_the_last_words() -> None:
    tail = "serving\nTraceback (most recent call last):\nValueError: filedescriptor out of range\n"
    message = grader.death_message({"ExitCode": 1, "OOMKilled": False}, tail)
    assert "exited with code 1" in message and "filedescriptor out of range" in message
    assert "memory limit" in grader.death_message({"ExitCode": 137, "OOMKilled": True}, "")


def test_scores_add_up_and_performance_earns_by_band() -> None:
    checks = spec.checks("select")
    outcomes = [grader.Outcome(c, "passed", points=float(c.points)) for c in checks]
    assert grader.score(outcomes) == (sum(c.points for c in checks),
                                      sum(c.points for c in checks))
    perf = spec.check("select", "performance.throughput")
    assert grader.band_points(perf, 0.6) == pytest.approx(perf.points * 0.6)


def test_every_outcome_names_its_page_and_reproduction() -> None:
    check = spec.check("epoll", "concurrency.idle-thousands")
    record = grader.Outcome(check, "failed", "why", reproduce="socklab probe grade …").as_dict()
    assert record["page"].startswith("docs/exercises/") and record["scored"] is True
    assert Path(record["page"]).name in os.listdir(Path(__file__).parents[2] / "docs/exercises")


def test_the_performance_ratio_is_the_median_of_side_by_side_rounds() -> None:
    # A neighbour's burst in one round (the second) moves one ratio, not the verdict.
    assert grader.performance_ratio([9000, 3000, 9100], [9000, 9000, 9100]) == 1.0
    assert grader.performance_ratio([4500, 4600, 4400], [9000, 9200, 8800]) == 0.5
    assert grader.performance_ratio([100.0], [0.0]) == 0.0


def test_the_submission_travels_as_a_tar_owned_by_root_with_its_modes(tmp_path: Path) -> None:
    import io
    import tarfile

    from socklab.host.grade.lab import submission_archive

    (tmp_path / "server").write_text("#!/bin/sh\n")
    (tmp_path / "server").chmod(0o755)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "util.py").write_text("X = 1\n")
    (tmp_path / "lib" / "util.py").chmod(0o644)
    (tmp_path / "link").symlink_to("server")
    with tarfile.open(fileobj=io.BytesIO(submission_archive(tmp_path))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("lib/util.py").read() == b"X = 1\n"  # type: ignore[union-attr]
    assert sorted(members) == ["lib", "lib/util.py", "link", "server"]
    assert {(m.uid, m.gid, m.uname) for m in members.values()} == {(0, 0, "root")}
    assert members["server"].mode & 0o777 == 0o755 and members["lib/util.py"].mode == 0o644
    assert members["link"].issym() and members["link"].linkname == "server"


def test_a_load_generator_error_is_blamed_on_the_server_it_names() -> None:
    from socklab.host.grade.lab import REFERENCE_ALIAS

    assert grader.reference_failed(
        f"socklab.loadgen.load echo: {REFERENCE_ALIAS} port 9000: ConnectionError: closed")
    assert not grader.reference_failed(
        "socklab.loadgen.load echo: select-server port 9000: ValueError: wrong echo")
    assert not grader.reference_failed("socklab.loadgen.load echo: BrokenBarrierError: ")


def test_the_ftp_reference_writes_through_the_page_cache_and_the_others_are_the_lab() -> None:
    """The reference a learner's upload rate is compared with does what the exercise asks
    (uploads through the page cache), not the lab's O_DIRECT writer; the rest run as is."""
    from socklab import cli
    from socklab.host.grade.lab import reference_overrides
    from socklab.host.labhosts import compose_services

    services = compose_services()
    ftp_command = reference_overrides(services["ftp-server"])["command"]
    assert ftp_command[:-1] == services["ftp-server"]["command"]
    args = cli.parser().parse_args(ftp_command[1:])
    assert args.page_cache_only and args.port == 9000
    assert not cli.parser().parse_args(services["ftp-server"]["command"][1:]).page_cache_only
    for host in ("tcp-server", "exec-server", "epoll-server", "udp-server"):
        assert reference_overrides(services[host]) == {}
