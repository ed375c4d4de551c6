"""Unit tests of socklab.host.containers: cgroup v1 and v2 readings, /proc parsing, exec
(fake file systems and a fake container; no Docker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from socklab.host import containers
from socklab.host.containers import CgroupDirs, read_cgroup

CID = "c0ffee"

# What the kernel shows for one container, by cgroup version, from the host.
V1_HOST = {
    f"/sys/fs/cgroup/memory/docker/{CID}/memory.usage_in_bytes": "1000\n",
    f"/sys/fs/cgroup/memory/docker/{CID}/memory.max_usage_in_bytes": "3000\n",
    f"/sys/fs/cgroup/memory/docker/{CID}/memory.stat": "cache 5\nrss 700\ntotal_rss 700\n",
    f"/sys/fs/cgroup/memory/docker/{CID}/memory.failcnt": "2\n",
    f"/sys/fs/cgroup/cpuacct/docker/{CID}/cpuacct.usage": "123456789\n",
}
V2_SCOPE = f"/sys/fs/cgroup/system.slice/docker-{CID}.scope"
V2_HOST = {
    f"{V2_SCOPE}/memory.current": "1000\n",
    f"{V2_SCOPE}/memory.peak": "3000\n",
    f"{V2_SCOPE}/memory.stat": "anon 700\nfile 5\n",
    f"{V2_SCOPE}/memory.events": "low 0\nhigh 0\nmax 2\noom 0\n",
    f"{V2_SCOPE}/cpu.stat": "usage_usec 123456\nuser_usec 100000\n",
}
EXPECTED = {"memory": 1000, "peak": 3000, "anon": 700, "limit_hits": 2}


@pytest.mark.parametrize(("files", "cpu_ns"), [(V1_HOST, 123456789), (V2_HOST, 123456000)],
                         ids=["v1", "v2"])
def test_read_cgroup_reads_v1_and_v2_alike(files: dict[str, str], cpu_ns: int) -> None:
    found = read_cgroup(CgroupDirs.on_host(CID), [*EXPECTED, "cpu_ns"], files.get)
    assert found == {**EXPECTED, "cpu_ns": cpu_ns}


def test_read_cgroup_finds_a_v2_cgroup_of_the_cgroupfs_driver() -> None:
    files = {f"/sys/fs/cgroup/docker/{CID}/memory.current": "42\n"}
    assert read_cgroup(CgroupDirs.on_host(CID), ["memory"], files.get) == {"memory": 42}


def test_read_cgroup_gives_none_for_what_the_kernel_does_not_keep() -> None:
    files = {k: v for k, v in V2_HOST.items() if not k.endswith("memory.peak")}  # Linux < 5.19
    found = read_cgroup(CgroupDirs.on_host(CID), ["peak", "memory"], files.get)
    assert found == {"peak": None, "memory": 1000}


def test_cgroup_inside_the_container_is_the_root_of_its_namespace() -> None:
    paths = [path for path, _ in CgroupDirs.inside().paths("cpu_ns")]
    assert paths == ["/sys/fs/cgroup/cpuacct/cpuacct.usage", "/sys/fs/cgroup/cpu.stat"]


def test_stat_value_reads_cgroup_stat_and_meminfo_lines() -> None:
    assert containers.stat_value("cache 10\nrss 20\ntotal_rss 30\n", "total_rss") == 30
    assert containers.stat_value("MemTotal:  100 kB\nMemAvailable:  64 kB\n",
                                 "MemAvailable") == 64
    assert containers.stat_value("rss 1\n", "anon") == 0


# A /proc/PID/stat line: the name may hold spaces and ")"; utime 11, stime 12 (fields
# 14 and 15), cutime 13, cstime 14.
STAT = "4242 (python3 ) x) S 1 4242 4242 0 -1 4194560 10 0 0 0 11 12 13 14 20 0 1 0\n"


def test_stat_ticks_counts_user_and_system_and_children_if_asked() -> None:
    assert containers.stat_ticks(STAT) == 23
    assert containers.stat_ticks(STAT, children=True) == 50


def test_process_usage_reads_rss_peak_and_cpu() -> None:
    files = {"/proc/7/status": "Name:\tpython3\nVmHWM:\t  300 kB\nVmRSS:\t  200 kB\n",
             "/proc/7/stat": STAT}
    found = containers.process_usage("/proc/7", files.get)
    tick_ns = 10**9 // os.sysconf("SC_CLK_TCK")
    assert found == {"rss": 200 * 1024, "hwm": 300 * 1024, "cpu_ns": 23 * tick_ns}
    assert containers.process_usage("/proc/8", files.get) == {
        "rss": None, "hwm": None, "cpu_ns": None}  # gone


def test_first_child_is_the_server_under_tini() -> None:
    assert containers.first_child(1, {"/proc/1/task/1/children": "17 99 "}.get) == "17"
    assert containers.first_child(1, {"/proc/1/task/1/children": ""}.get) is None


def test_health_is_the_check_s_state_while_running_else_the_status() -> None:
    def attrs(status: str, **health: str) -> dict[str, Any]:
        return {"State": {"Status": status, **({"Health": health} if health else {})}}

    assert containers.health(attrs("running", Status="starting")) == "starting"
    assert containers.health(attrs("running")) == "running"
    assert containers.health(attrs("exited", Status="healthy")) == "exited"


class FakeContainer:
    """An SDK container whose exec runs the command here, as a subprocess."""

    name = "fake"

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def exec_run(self, command: list[str], demux: bool, user: str = "") -> Any:
        self.commands.append(command)
        done = subprocess.run(command, capture_output=True, check=False)
        return done.returncode, (done.stdout or None, done.stderr or None)


def test_exec_in_kills_the_command_after_its_timeout_inside_and_decodes() -> None:
    fake = FakeContainer()
    done = containers.exec_in(fake, ["sh", "-c", "printf 'out\\377'; echo err >&2; exit 3"],
                              timeout=5)
    assert fake.commands[0][:3] == ["timeout", "--kill-after=5", "5"]
    assert done == (3, "out\ufffd", "err\n")
    code, out, _ = done  # the bench unpacks it
    assert (code, done.stdout) == (3, out)


def test_read_files_script_reads_each_path_and_gives_none_for_the_missing(
        tmp_path: Path) -> None:
    present = tmp_path / "memory.current"
    present.write_text("4096\n")
    done = subprocess.run([sys.executable, "-c", containers.READ_FILES_SCRIPT, str(present),
                           str(tmp_path / "absent")], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["files"] == {str(present): "4096\n",
                                                str(tmp_path / "absent"): None}


class AnsweringContainer:
    """A container whose every exec prints ``answer`` (what READ_FILES_SCRIPT would)."""

    name = "answering"

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    def exec_run(self, command: list[str], demux: bool, user: str = "") -> Any:
        return 0, (json.dumps(self.answer).encode(), None)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_resources_inside_reads_the_container_s_own_cgroup(version: str) -> None:
    inside = {"v1": {path.replace(f"/docker/{CID}", ""): text for path, text in V1_HOST.items()},
              "v2": {path.replace(V2_SCOPE, "/sys/fs/cgroup"): text
                     for path, text in V2_HOST.items()}}[version]
    server = {"/proc/{server}/status": "VmHWM:\t 300 kB\n", "/proc/{server}/stat": STAT}
    found = containers.resources_inside(
        AnsweringContainer({"server": "7", "files": {**inside, **server}}), timeout=5)
    assert {k: found[k] for k in ("current", "peak", "anon", "limit_hits")} == {
        "current": 1000, "peak": 3000, "anon": 700, "limit_hits": 2}
    assert found["server_pid"] == 7 and found["server_hwm"] == 300 * 1024
    assert found["cpu_ns"] > 0 and found["server_cpu_ns"] > 0
