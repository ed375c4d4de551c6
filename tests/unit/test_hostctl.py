"""Unit tests of socklab.host.hostctl's lab naming and lab listing, and of the Makefile's
LAB handling (make run with bad names or -n: nothing starts). The capacity measurement's
arithmetic is in test_capacity.py, the cgroup readings in test_containers.py."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from socklab.host import hostctl
from socklab.host.paths import REPO_ROOT

ROOT = REPO_ROOT


@pytest.mark.parametrize(("lab", "project"), [("", "socklab"), ("alice", "socklab-alice"),
                                              ("t-1-gw0-a", "socklab-t-1-gw0-a")])
def test_lab_project_and_lab_of_are_inverse(lab: str, project: str) -> None:
    assert hostctl.lab_project(lab) == project
    assert hostctl.lab_of(project) == lab


@pytest.mark.parametrize("lab", ["", "alice", "m1", "0", "group-7", "a" * hostctl.MAX_LAB_LENGTH])
def test_lab_error_accepts_lab_names(lab: str) -> None:
    assert hostctl.lab_error(lab) is None


@pytest.mark.parametrize("lab", ["Alice", "-x", "a_b", "a b", "a.b", "é", "a/b", "x'y"])
def test_lab_error_refuses_what_is_not_a_lab_name(lab: str) -> None:
    error = hostctl.lab_error(lab)
    assert error is not None and "not a lab name" in error


def test_lab_error_refuses_a_name_whose_container_names_exceed_a_dns_label() -> None:
    lab = "a" * (hostctl.MAX_LAB_LENGTH + 1)
    error = hostctl.lab_error(lab)
    assert error is not None and f"at most {hostctl.MAX_LAB_LENGTH}" in error
    longest = f"socklab-{'a' * hostctl.MAX_LAB_LENGTH}_twisted-server_1"
    assert len(longest) == 63  # the longest name a lab may give a container


def test_lab_error_refuses_publish_with_a_lab_only() -> None:
    error = hostctl.lab_error("alice", publish=True)
    assert error is not None and "PUBLISH=1" in error
    assert hostctl.lab_error("", publish=True) is None


def test_projects_of_lists_learner_labs_and_leaves_out_tests_and_strangers() -> None:
    lines = ["socklab|", "socklab-alice|", "socklab-alice|", "socklab-t-9-gw0-a|9",
             "|42", "other|", "socklab-|"]
    assert hostctl.projects_of(lines) == ["socklab", "socklab-alice"]


def test_lab_hint_names_the_lab_on_make_s_command_line() -> None:
    assert hostctl.lab_hint("socklab") == ""
    assert hostctl.lab_hint("socklab-bob") == " LAB=bob"


def test_check_lab_exits_1_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert hostctl.main(["check-lab", "--lab=-x"]) == 1
    assert "not a lab name" in capsys.readouterr().err
    assert hostctl.main(["check-lab", "--lab", "alice"]) == 0


def test_lab_yml_names_the_network_after_the_lab() -> None:
    compose = yaml.safe_load((ROOT / "compose" / "lab.yml").read_text())
    assert compose["networks"]["lab"]["name"] == "${SOCKLAB_NETWORK:-socklab}"
    assert "name" not in compose["volumes"]["uploads"]  # <project>_uploads: one per lab


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, text=True,
                          capture_output=True, check=False, timeout=60)


@pytest.mark.parametrize("target", ["up", "down", "shell", "ps", "logs"])
def test_make_refuses_a_bad_lab_before_anything_starts(target: str) -> None:
    result = _make(target, "LAB=Bad_Name")
    assert result.returncode != 0
    assert "LAB='Bad_Name' is not a lab name" in result.stderr
    assert "starting the lab" not in result.stderr + result.stdout


def test_make_refuses_publish_with_a_lab() -> None:
    result = _make("up", "LAB=alice", "PUBLISH=1")
    assert result.returncode != 0 and "PUBLISH=1 with LAB=alice" in result.stderr


@pytest.mark.parametrize(("lab", "project"), [("", "socklab"), ("alice", "socklab-alice")])
def test_make_drives_compose_with_the_lab_s_project_and_network(lab: str, project: str) -> None:
    result = _make("-n", "down", f"LAB={lab}")
    assert result.returncode == 0, result.stderr
    assert f"SOCKLAB_NETWORK={project} " in result.stdout
    assert f" -p {project} -f compose/lab.yml" in result.stdout


def test_sort_states_waits_for_unhealthy_and_starting_hosts_and_fails_stopped_ones() -> None:
    states = {"tcp-server": "healthy", "client-1": "running", "twisted-server": "unhealthy",
              "udp-server": "starting", "ftp-server": "exited", "exec-server": "restarting"}
    pending, failed = hostctl.sort_states(states)
    assert pending == ["twisted-server", "udp-server"]
    assert failed == ["exec-server", "ftp-server"]


def test_other_labs_say_which_run_and_which_are_stopped_with_their_uploads() -> None:
    """The default lab down (its uploads volume kept) is not listed as a lab to look at
    with make ps: it is stopped, and make up starts it again."""
    lines = hostctl.other_labs_lines("socklab-x", ["socklab", "socklab-bob", "socklab-x"],
                                     ["socklab-bob", "socklab-x"])
    assert lines == ["Other labs running on this machine: bob (make ps LAB=name)",
                     "Stopped here, their uploads kept: the default lab (make up)"]
    assert hostctl.other_labs_lines("socklab", ["socklab", "socklab-carol"], ["socklab"]) == [
        "Stopped here, their uploads kept: carol (make up LAB=carol)"]
    assert hostctl.other_labs_lines("socklab", ["socklab"], ["socklab"]) == []


def test_the_ports_a_health_check_looks_for() -> None:
    def container(test: list[str] | None) -> dict:
        return {"Config": {"Healthcheck": {"Test": test} if test else None}, "State": {}}

    assert hostctl.health_ports(container(["CMD", "socklab-listening", "9000"])) == (
        [9000], "tcp")
    assert hostctl.health_ports(container(["CMD", "socklab-listening", "9999", "udp"])) == (
        [9999], "udp")
    assert hostctl.health_ports(container(["CMD-SHELL", "true"])) is None
    assert hostctl.health_ports(container(None)) is None


def test_a_starting_server_already_listening_counts_as_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """make up need not wait for the first health check (5 s): the host sees the port."""
    def host(name: str, health: str, pid: int) -> dict:
        return {"Name": f"/socklab_{name}_1", "Id": f"{pid:064x}",
                "State": {"Status": "running", "Pid": pid, "Health": {"Status": health}},
                "Config": {"Labels": {"com.docker.compose.service": name},
                           "Healthcheck": {"Test": ["CMD", "socklab-listening", "9000"]}}}

    listening = {101: ("0.0.0.0",), 102: (), 104: ("0.0.0.0",)}
    # 104's PID is not in its container here (an engine on another machine): not trusted.
    cgroups = {f"/proc/{pid}/cgroup": f"0::/system.slice/docker-{pid:064x}.scope\n"
               for pid in (101, 102, 103)} | {"/proc/104/cgroup": "0::/user.slice\n"}
    monkeypatch.setattr(hostctl.containers, "read_host_file", cgroups.get)
    monkeypatch.setattr(hostctl.procfs, "listening",
                        lambda pid, port, transport: hostctl.procfs.Listening(
                            port, listening[pid]))
    states = hostctl.lab_states([host("tcp-server", "starting", 101),
                                 host("select-server", "starting", 102),
                                 host("epoll-server", "healthy", 103),
                                 host("udp-server", "starting", 104)])
    assert states == {"tcp-server": hostctl.LISTENING, "select-server": "starting",
                      "epoll-server": "healthy", "udp-server": "starting"}
    assert hostctl.sort_states(states) == (["select-server", "udp-server"], [])
