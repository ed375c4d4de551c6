"""engines: the ssh home a remote engine is reached through, and the swarm's workers.

No engine is contacted: ``ssh_home`` and ``session_home`` work on files under
``tmp_path`` (with ``HOME`` an empty directory, so the user's own known_hosts
is not read), and ``swarm_workers`` on a fake manager whose nodes carry
attributes shaped like ``docker node inspect``'s.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from socklab.host.grade.engines import (
    SERVERS_LABEL,
    EngineError,
    Worker,
    known_hosts_files,
    node_address,
    session_home,
    ssh_home,
    swarm_workers,
    worker_url,
)

MANAGER = "ssh://deploy@manager.example:2222"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME: no ~/.ssh/known_hosts of the user's own."""
    directory = tmp_path / "home"
    directory.mkdir()
    monkeypatch.setenv("HOME", str(directory))
    return directory


# --- known_hosts_files -------------------------------------------------------------------


def test_several_files_on_one_line_are_all_named(home: Path) -> None:
    text = "Host vm1\n  UserKnownHostsFile /etc/a ~/b\n"
    assert known_hosts_files(text) == [Path("/etc/a"), home / "b"]


def test_quoted_paths_keep_their_spaces() -> None:
    text = 'UserKnownHostsFile "/srv/my vms/known_hosts" \'/srv/other one\'\n'
    assert known_hosts_files(text) == [Path("/srv/my vms/known_hosts"), Path("/srv/other one")]


def test_dev_null_other_keywords_and_comments_are_ignored() -> None:
    text = ("# UserKnownHostsFile /commented/out\n"
            "Host *\n"
            "  UserKnownHostsFile /dev/null\n"
            "  GlobalKnownHostsFile /etc/ssh/global\n"
            "  IdentityFile /keys/id\n"
            "  UserKnownHostsFile\n"
            "  userknownhostsfile /dev/null /kept  # and a note\n"
            "\n")
    assert known_hosts_files(text) == [Path("/kept")]


def test_every_host_block_counts() -> None:
    text = ("Host a\n  UserKnownHostsFile /one\n\n"
            "Host b\n  UserKnownHostsFile /two\n")
    assert known_hosts_files(text) == [Path("/one"), Path("/two")]
    assert known_hosts_files("") == []


# --- ssh_home ----------------------------------------------------------------------------


def test_ssh_home_holds_the_config_and_the_hosts_it_names(home: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "kh1", tmp_path / "kh 2"
    first.write_text("10.0.0.1 ssh-ed25519 AAAAfirst\n")
    second.write_text("10.0.0.2 ssh-ed25519 AAAAsecond\n")
    config = tmp_path / "ssh_config"
    config.write_text(f'Host vm1\n  UserKnownHostsFile {first} "{second}" /dev/null\n'
                      f"Host vm2\n  UserKnownHostsFile {tmp_path / 'absent'}\n")
    into = tmp_path / "session"
    assert ssh_home(config, into) == into
    directory = into / ".ssh"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert (directory / "config").read_text() == config.read_text()
    assert (directory / "known_hosts").read_text() == (
        "10.0.0.1 ssh-ed25519 AAAAfirst\n10.0.0.2 ssh-ed25519 AAAAsecond\n")


def test_ssh_home_adds_the_users_own_known_hosts_first(home: Path, tmp_path: Path) -> None:
    (home / ".ssh").mkdir()
    (home / ".ssh" / "known_hosts").write_text("github.com ssh-ed25519 AAAAown\n")
    named = tmp_path / "kh"
    named.write_text("10.0.0.1 ssh-ed25519 AAAAvm\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"UserKnownHostsFile {named}\n")
    into = ssh_home(config, tmp_path / "session")
    assert (into / ".ssh" / "known_hosts").read_text() == (
        "github.com ssh-ed25519 AAAAown\n10.0.0.1 ssh-ed25519 AAAAvm\n")


def test_ssh_home_with_no_known_hosts_trusts_no_host(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host vm1\n  UserKnownHostsFile /dev/null\n")
    into = ssh_home(config, tmp_path / "session")
    assert (into / ".ssh" / "known_hosts").read_text() == ""


# --- session_home ------------------------------------------------------------------------


@pytest.mark.parametrize("ssh_config", [None, ""])
def test_no_ssh_config_is_the_users_own_home(ssh_config: str | None) -> None:
    with session_home(ssh_config) as directory:
        assert directory is None


def test_a_missing_ssh_config_is_an_engine_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent" / "ssh_config"
    with pytest.raises(EngineError, match="no ssh config"), session_home(str(missing)):
        pytest.fail("entered a session with no ssh config")
    with pytest.raises(EngineError), session_home(str(tmp_path)):  # a directory
        pytest.fail("entered a session with a directory for a config")


def test_a_session_home_is_made_then_removed(home: Path, tmp_path: Path) -> None:
    known = tmp_path / "kh"
    known.write_text("10.0.0.9 ssh-ed25519 AAAA\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host vm\n  UserKnownHostsFile {known}\n")
    with session_home(str(config)) as directory:
        assert directory is not None and directory != home
        assert (directory / ".ssh" / "config").read_text() == config.read_text()
        assert (directory / ".ssh" / "known_hosts").read_text() == known.read_text()
    assert not directory.exists()


# --- worker_url --------------------------------------------------------------------------


def test_a_worker_is_reached_as_the_manager_is() -> None:
    assert worker_url(MANAGER, "10.0.0.5") == "ssh://deploy@10.0.0.5"
    assert worker_url("ssh://manager.example", "10.0.0.5") == "ssh://10.0.0.5"


# --- swarm_workers -----------------------------------------------------------------------


@dataclass
class FakeNode:
    attrs: dict[str, Any]


@dataclass
class FakeNodes:
    nodes: list[FakeNode]

    def list(self) -> list[FakeNode]:
        return self.nodes


@dataclass
class FakeManager:
    """Stands in for a DockerClient on the swarm's manager: only ``nodes.list()``."""

    node_list: list[FakeNode] = field(default_factory=list)

    @property
    def nodes(self) -> FakeNodes:
        return FakeNodes(self.node_list)


def node(hostname: str, *, role: str = "worker", state: str = "ready",
         availability: str = "active", labels: dict[str, str] | None = None,
         addr: str = "", nano_cpus: int = 2 * 10**9) -> FakeNode:
    """A node as ``docker node inspect`` shapes it (the fields swarm_workers reads)."""
    return FakeNode({
        "ID": f"id-{hostname}",
        "Spec": {"Labels": labels if labels is not None else {}, "Role": role,
                 "Availability": availability},
        "Description": {"Hostname": hostname,
                        "Resources": {"NanoCPUs": nano_cpus, "MemoryBytes": 2 * 2**30}},
        "Status": {"State": state, "Addr": addr or "10.0.0.1"},
    })


def names(workers: list[Worker]) -> list[str]:
    return [w.name for w in workers]


def test_nodes_labelled_for_the_servers_are_preferred() -> None:
    manager = FakeManager([
        node("w-plain"),
        node("m-labelled", role="manager", labels={SERVERS_LABEL: "true"}),
        node("w-labelled", labels={SERVERS_LABEL: "true", "other": "x"}),
        node("m-plain", role="manager"),
        node("w-other-label", labels={"zone": "a"}),
    ])
    assert names(swarm_workers(manager, MANAGER)) == ["m-labelled", "w-labelled"]


def test_with_no_label_the_workers_are_chosen() -> None:
    manager = FakeManager([node("manager1", role="manager"), node("w2"), node("w1")])
    assert names(swarm_workers(manager, MANAGER)) == ["w1", "w2"]


def test_with_no_label_and_no_worker_every_usable_node_is() -> None:
    manager = FakeManager([node("m2", role="manager"), node("m1", role="manager"),
                           node("m3", role="manager", state="down")])
    assert names(swarm_workers(manager, MANAGER)) == ["m1", "m2"]


def test_down_drained_and_paused_nodes_are_skipped() -> None:
    manager = FakeManager([
        node("a-down", labels={SERVERS_LABEL: ""}, state="down"),
        node("b-drained", labels={SERVERS_LABEL: ""}, availability="drain"),
        node("c-paused", labels={SERVERS_LABEL: ""}, availability="pause"),
        node("d-unknown", state="unknown"),
        node("e-ready"),
        node("f-manager", role="manager"),
    ])
    # The labelled nodes are all unusable: the ready worker is chosen, not the manager.
    assert names(swarm_workers(manager, MANAGER)) == ["e-ready"]


def test_a_node_with_no_labels_at_all_is_read() -> None:
    bare = node("w1")
    del bare.attrs["Spec"]["Labels"]
    nulled = node("w2", labels={})
    nulled.attrs["Spec"]["Labels"] = None
    assert names(swarm_workers(FakeManager([bare, nulled]), MANAGER)) == ["w1", "w2"]


@pytest.mark.parametrize("nodes", [
    [],
    [node("w1", state="down"), node("m1", role="manager", availability="drain")],
])
def test_no_usable_node_is_an_engine_error(nodes: list[FakeNode]) -> None:
    with pytest.raises(EngineError, match=re.escape(MANAGER)):
        swarm_workers(FakeManager(nodes), MANAGER)


def test_workers_are_sorted_by_hostname_with_their_urls_and_cpus() -> None:
    manager = FakeManager([
        node("vm-c", addr="10.1.0.3", nano_cpus=4 * 10**9),
        node("vm-a", addr="10.1.0.1", nano_cpus=500_000_000),
        node("vm-b", addr="10.1.0.2", nano_cpus=2_500_000_000),
    ])
    assert swarm_workers(manager, MANAGER) == [
        Worker("vm-a", "ssh://deploy@10.1.0.1", 1),
        Worker("vm-b", "ssh://deploy@10.1.0.2", 2),
        Worker("vm-c", "ssh://deploy@10.1.0.3", 4),
    ]
    assert swarm_workers(manager, "ssh://10.1.0.9")[0].url == "ssh://10.1.0.1"


def test_keyword_equals_value_is_read_and_a_broken_quote_is_an_engine_error() -> None:
    assert known_hosts_files("UserKnownHostsFile=/a /b\n  UserKnownHostsFile = /c\n") == [
        Path("/a"), Path("/b"), Path("/c")]
    with pytest.raises(EngineError, match="UserKnownHostsFile"):
        known_hosts_files('UserKnownHostsFile "/a\n')
    assert known_hosts_files("ProxyCommand sh -c 'it's\n") == []  # not ours to parse


def test_known_hosts_files_without_a_last_newline_stay_apart(home: Path, tmp_path: Path) -> None:
    (tmp_path / "a").write_text("10.0.0.2 ssh-ed25519 AAAA")
    (tmp_path / "b").write_text("10.0.0.3 ssh-ed25519 BBBB\n")
    config = tmp_path / "config"
    config.write_text(f"Host *\n  UserKnownHostsFile {tmp_path / 'a'} {tmp_path / 'b'}\n")
    made = ssh_home(config, tmp_path / "home")
    lines = (made / ".ssh" / "known_hosts").read_text().splitlines()
    assert lines == ["10.0.0.2 ssh-ed25519 AAAA", "10.0.0.3 ssh-ed25519 BBBB"]


def test_a_manager_is_reached_at_its_manager_address_and_ipv6_is_bracketed() -> None:
    manager = node("vm-1", role="manager", addr="0.0.0.0").attrs
    manager["ManagerStatus"] = {"Addr": "172.18.0.2:2377", "Leader": True}
    assert node_address(manager) == "172.18.0.2"
    assert node_address(node("vm-2", addr="172.18.0.3").attrs) == "172.18.0.3"
    assert worker_url(MANAGER, "fd00::3") == "ssh://deploy@[fd00::3]"
