"""The stack file rendered from compose/lab.yml and compose/swarm.yml (no Docker)."""

from __future__ import annotations

import pytest

from socklab.host import stack
from socklab.registry import CLIENTS, VARIANTS

LAB = stack.load(stack.LAB_FILE)
SWARM = stack.load(stack.SWARM_FILE)


def rendered(name: str = "socklab") -> dict:
    return stack.render(LAB, SWARM, name, "socklab-lab:abc")


def test_every_lab_service_is_in_the_stack_with_the_image_and_the_lab_network() -> None:
    services = rendered()["services"]
    assert set(services) == set(LAB["services"])
    for service in services.values():
        assert service["image"] == "socklab-lab:abc"
        assert service["networks"] == ["lab"]


def test_the_network_is_named_after_the_stack_and_is_an_attachable_overlay() -> None:
    network = rendered("socklab-alice")["networks"]["lab"]
    assert network["name"] == "socklab-alice_lab" == stack.network_name("socklab-alice")
    assert (network["driver"], network["attachable"], network["internal"]) == (
        "overlay", True, True)


def test_servers_and_clients_are_placed_on_differently_labelled_nodes() -> None:
    for name, service in rendered()["services"].items():
        constraints = service["deploy"]["placement"]["constraints"]
        role = "clients" if name.startswith("client-") else "servers"
        assert constraints == [f"node.labels.socklab.{role} == true"], name
        assert service["deploy"]["endpoint_mode"] == "dnsrr"


def test_keys_the_stack_format_refuses_are_translated_or_dropped() -> None:
    services = rendered()["services"]
    for service in services.values():
        assert not {"mem_limit", "memswap_limit", "pids_limit", "tmpfs", "restart",
                    "security_opt"} & set(service)
    epoll = services[VARIANTS["epoll"].host]["deploy"]["resources"]["limits"]
    assert epoll == {"memory": "512M", "pids": 512}
    assert services[VARIANTS["tcp"].host]["deploy"]["resources"]["limits"]["memory"] == "256M"
    exec_mounts = {v["target"]: v for v in services[VARIANTS["exec"].host]["volumes"]}
    assert exec_mounts["/srv/exec"] == {"type": "tmpfs", "target": "/srv/exec",
                                        "tmpfs": {"size": 64 * 2**20}}
    assert exec_mounts["/tmp"]["tmpfs"] == {"size": 16 * 2**20}
    assert "uploads:/srv/uploads" in services[VARIANTS["ftp"].host]["volumes"]


def test_kernel_settings_and_limits_of_lab_yml_are_kept() -> None:
    services = rendered()["services"]
    assert services[VARIANTS["tcp"].host]["sysctls"] == {"net.core.somaxconn": 128}
    assert services[VARIANTS["select"].host]["ulimits"]["nofile"] == {"soft": 4096, "hard": 4096}
    assert services[CLIENTS[0]]["cap_add"] == ["NET_ADMIN"]
    assert services[VARIANTS["tcp"].host]["command"][-2:] == ["--backlog", "5"]


def test_version_is_the_one_debians_docker_cli_requires_and_extensions_are_gone() -> None:
    stack_file = rendered()
    assert stack_file["version"] == "3.9"
    assert not [key for key in stack_file if key.startswith("x-")]


def test_merge_is_deep_for_maps_and_replaces_lists() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert stack.merge(base, {"a": {"c": [3]}, "e": 2}) == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}


def test_interpolation_uses_values_then_defaults_and_refuses_a_missing_value() -> None:
    values = {"X": "x"}
    assert stack.interpolate(["${X}", "${Y:-y}", "${X:-z}/${Y-w}"], values) == ["x", "y", "x/w"]
    with pytest.raises(stack.StackError, match="no value"):
        stack.interpolate("${Y}", values)


@pytest.mark.parametrize("name", ["", "Alice", "-a", "a_b", "a" * 49])
def test_bad_stack_names_are_refused(name: str) -> None:
    with pytest.raises(stack.StackError, match="stack name"):
        rendered(name)


def test_a_bad_tmpfs_size_is_refused() -> None:
    with pytest.raises(stack.StackError, match="size"):
        stack.tmpfs_mount("/tmp:size=lots")
    assert stack.tmpfs_mount("/x") == {"type": "tmpfs", "target": "/x"}


def test_an_override_for_an_unknown_service_is_refused() -> None:
    with pytest.raises(stack.StackError, match="lacks"):
        stack.render(LAB, {"services": {"nope": {}}}, "socklab", "i")
