"""The registry against itself and against the compose files: one contract, one table.

compose/lab.yml, publish.yml and swarm.yml spell hosts and ports for Compose;
these tests fail as soon as one of them disagrees with ``socklab.registry``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from socklab.registry import (
    CLIENTS,
    ECHO_VARIANTS,
    HELLO,
    TRANSFORMS,
    VARIANTS,
    Variant,
    by_host,
    server_hosts,
)

COMPOSE = Path(__file__).resolve().parents[2] / "compose"
SERVERS = list(VARIANTS.values())


def _compose(name: str) -> dict:
    return yaml.safe_load((COMPOSE / name).read_text())


def _option(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


def test_registry_names_every_variant_once_with_its_own_host() -> None:
    assert list(VARIANTS) == ["tcp", "udp", "exec", "ftp", "select", "epoll", "twisted"]
    assert len(set(server_hosts())) == len(VARIANTS)
    assert all(by_host(v.host) is v for v in SERVERS)


def test_registry_by_host_names_the_hosts_there_are() -> None:
    with pytest.raises(KeyError, match="tcp-server"):
        by_host("nope-server")


def test_registry_port_of_unknown_framing_names_the_framings() -> None:
    with pytest.raises(KeyError, match="naive, handshake, framed"):
        VARIANTS["exec"].port("http")


def test_registry_refuses_a_bad_variant() -> None:
    with pytest.raises(ValueError, match="transport"):
        Variant("x", "x-server", "sctp", {"echo": 1}, "x", concurrent=True)
    with pytest.raises(ValueError, match="transform"):
        Variant("x", "x-server", "tcp", {"echo": 1}, "x", concurrent=True, reply="rot13")


def test_registry_tables_cannot_be_changed_by_a_reader() -> None:
    with pytest.raises(TypeError):
        VARIANTS["tcp"].ports["echo"] = 1  # type: ignore[index]


@pytest.mark.parametrize(("name", "chunk", "reply"), [
    ("tcp", b"abc\xff", b"ABC\xff"), ("select", b"Hi", b"HI"), ("epoll", b"x y", b"X Y"),
    ("twisted", b"abc", b"abc"), ("udp", b"anything", b"ok"),
])
def test_registry_transform_is_the_contracts_reply(name: str, chunk: bytes, reply: bytes) -> None:
    assert VARIANTS[name].transform(chunk) == reply


def test_registry_echo_variants_greet_as_the_contract_says() -> None:
    assert ECHO_VARIANTS == ("tcp", "select", "epoll", "twisted")
    assert {n for n in ECHO_VARIANTS if VARIANTS[n].greeting} == {"select", "epoll"}
    assert VARIANTS["select"].greeting == HELLO == b"hello"
    assert set(TRANSFORMS) == {"upper", "same", "ack"}


def test_registry_protocol_variants_have_no_transform() -> None:
    for name in ("exec", "ftp"):
        with pytest.raises(ValueError, match="protocol"):
            VARIANTS[name].transform(b"x")


def test_registry_banners_are_one_line() -> None:
    banners = [b for v in SERVERS for b in v.banners.values()]
    assert len(banners) == 2
    assert all(b.endswith(b"\n") and b.count(b"\n") == 1 for b in banners)


def test_lab_yml_has_a_service_per_host_and_nothing_else() -> None:
    assert set(_compose("lab.yml")["services"]) == set(server_hosts()) | set(CLIENTS)


@pytest.mark.parametrize("variant", SERVERS, ids=lambda v: v.name)
def test_lab_yml_serves_each_variant_on_its_registry_ports(variant: Variant) -> None:
    service = _compose("lab.yml")["services"][variant.host]
    command = service["command"]
    assert command[:3] == ["socklab", "serve", variant.name]
    assert service["hostname"] == variant.host
    flags = {"naive": "--port", "handshake": "--handshake-port", "framed": "--framed-port"}
    for framing, port in variant.ports.items():
        assert _option(command, flags.get(framing, "--port")) == str(port), framing
    health = service["healthcheck"]["test"]
    assert health[:2] == ["CMD", "socklab-listening"]
    assert int(health[2]) in variant.ports.values()
    assert ("udp" in health) == (variant.transport == "udp")


@pytest.mark.parametrize("variant", SERVERS, ids=lambda v: v.name)
def test_publish_yml_publishes_exactly_the_registry_ports(variant: Variant) -> None:
    published = _compose("publish.yml")["services"][variant.host]["ports"]
    suffix = "/udp" if variant.transport == "udp" else ""
    inside = sorted(p.split(":")[2] for p in published)
    assert inside == sorted(f"{p}{suffix}" for p in variant.ports.values())
    assert all(p.startswith("127.0.0.1:") for p in published)


def test_publish_yml_covers_every_server_and_only_servers() -> None:
    assert set(_compose("publish.yml")["services"]) == set(server_hosts())


def test_swarm_yml_places_every_host_of_the_registry() -> None:
    services = _compose("swarm.yml")["services"]
    assert set(services) == set(server_hosts()) | set(CLIENTS)
    for host in server_hosts():
        assert "socklab.servers" in services[host]["deploy"]["placement"]["constraints"][0]
    for host in CLIENTS:
        assert "socklab.clients" in services[host]["deploy"]["placement"]["constraints"][0]
