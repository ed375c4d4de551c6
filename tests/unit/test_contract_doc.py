"""docs/protocols.md against the code: the contract's tables cannot drift from the registry.

The page is what outside clients read; ``socklab.registry`` is what the servers
and clients run. Each table of the page (hosts and ports, what is sent on
connect, server and client hosts, caps) is parsed here and compared with the
registry, ``compose/lab.yml`` and ``compose/publish.yml``; a failure names the
row and both values.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
import yaml

from socklab.registry import CLIENTS, NETWORK, TRANSFORMS, VARIANTS, Variant, by_host, server_hosts
from socklab.servers.base import DEFAULT_BACKLOG

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "protocols.md").read_text()
SERVERS = list(VARIANTS.values())

# A cell ends at a "|" that is not escaped as "\|" (GitHub's table syntax).
CELL_BORDER = re.compile(r"(?<!\\)\|")

UNITS = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def _compose(name: str) -> dict:
    return yaml.safe_load((ROOT / "compose" / name).read_text())


def _table(heading: str) -> list[dict[str, str]]:
    """The rows of the first table under ``## heading``, each as {column: cell}."""
    lines = DOC.splitlines()
    try:
        start = lines.index(f"## {heading}")
    except ValueError:
        pytest.fail(f"docs/protocols.md has no heading '## {heading}'")
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([c.strip().replace("\\|", "|") for c in CELL_BORDER.split(line)[1:-1]])
        elif rows:
            break
    assert len(rows) > 2, f"no table under '## {heading}'"
    header, body = rows[0], rows[2:]
    return [dict(zip(header, row, strict=True)) for row in body]


def _code(cell: str) -> str:
    """A cell's text without the backticks around it."""
    return cell.strip().strip("`")


def _quantity(cell: str) -> float:
    """``"32 MiB"`` → 33554432, ``"15 s"`` → 15.0, ``"3 commands"`` → 3, ``"65,507 bytes"``."""
    match = re.fullmatch(r"([\d,.]+) (\S+)", cell)
    assert match, f"a value is a number and a unit, not {cell!r}"
    number = float(match[1].replace(",", ""))
    return number * UNITS.get(match[2], 1)


def _code_value(name: str) -> int | float:
    """What a caps row's name stands for: ``exec.output`` or ``servers.base.CONSTANT``."""
    first, _, rest = name.partition(".")
    if first in VARIANTS and "." not in rest:
        caps = VARIANTS[first].caps
        assert rest in caps, f"{first} has no cap {rest!r}; it has {', '.join(caps)}"
        return caps[rest]
    module, _, constant = name.rpartition(".")
    return getattr(importlib.import_module(f"socklab.{module}"), constant)


def _row_key(row: dict[str, str]) -> tuple[str, str]:
    return _code(row["host"]), _code(row["framing"])


# --- Hosts and ports --------------------------------------------------------------------


def test_contract_doc_ports_table_is_the_registry_in_its_order() -> None:
    rows = _table("Hosts and ports")
    documented = [(_code(r["host"]), r["port"], _code(r["framing"])) for r in rows]
    expected = [(v.host, f"{port}/{v.transport}", framing)
                for v in SERVERS for framing, port in v.ports.items()]
    assert documented == expected


def test_contract_doc_published_ports_are_compose_publish_yml() -> None:
    published = _compose("publish.yml")["services"]
    for row in _table("Hosts and ports"):
        host, (port, transport) = _code(row["host"]), row["port"].split("/")
        suffix = "/udp" if transport == "udp" else ""
        mapping = f"{row['published (`PUBLISH=1`)']}:{port}{suffix}"
        assert mapping in published[host]["ports"], (host, mapping, published[host]["ports"])


def test_contract_doc_every_host_port_it_writes_is_a_registry_port() -> None:
    for host, port in re.findall(r"\b([a-z]+-server):(\d+)\b", DOC):
        assert int(port) in by_host(host).ports.values(), f"{host}:{port}"


def test_contract_doc_names_the_lab_network() -> None:
    assert f"on the network `{NETWORK}`" in DOC


# --- On connect, and the answer to a chunk ------------------------------------------------


def _sent_on_connect(cell: str) -> bytes:
    return b"" if cell == "nothing" else ast.literal_eval(_code(cell))


def test_contract_doc_on_connect_table_covers_every_port_once() -> None:
    documented = [_row_key(r) for r in _table("On connect, and the answer to a chunk")]
    assert documented == [(v.host, framing) for v in SERVERS for framing in v.ports]


@pytest.mark.parametrize("row", _table("On connect, and the answer to a chunk"), ids=_row_key)
def test_contract_doc_on_connect_bytes_and_answer_are_the_registrys(row: dict[str, str]) -> None:
    host, framing = _row_key(row)
    variant = by_host(host)
    assert _sent_on_connect(row["sent on connect"]) == (variant.banner(framing) or variant.greeting)
    answer = _code(row["answer"])
    assert answer in (*TRANSFORMS, "protocol")
    assert variant.reply == (None if answer == "protocol" else answer)


# --- Server and client hosts --------------------------------------------------------------


def _option(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


def _documented_backlog(variant: Variant, command: list[str]) -> str:
    if variant.transport == "udp":
        return "—"
    return _option(command, "--backlog") or str(DEFAULT_BACKLOG)


def _nofile(service: dict) -> str:
    limits = service.get("ulimits", {}).get("nofile")
    return str(limits["soft"]) if limits else "Docker's default"


def test_contract_doc_server_hosts_table_is_compose_lab_yml() -> None:
    services = _compose("lab.yml")["services"]
    rows = _table("Server hosts")
    assert [_code(r["host"]) for r in rows] == server_hosts()
    for row in rows:
        host = _code(row["host"])
        service, variant = services[host], by_host(host)
        somaxconn = service.get("sysctls", {}).get("net.core.somaxconn", "kernel default")
        memory = service["mem_limit"].replace("m", " MiB")
        assert row["listen backlog"] == _documented_backlog(variant, service["command"]), host
        assert row["`net.core.somaxconn`"] == str(somaxconn), host
        assert row["`nofile`"] == _nofile(service), host
        assert row["memory"] == memory, host


def test_contract_doc_client_hosts_table_is_compose_lab_yml() -> None:
    services = _compose("lab.yml")["services"]
    rows = _table("Client hosts")
    assert tuple(_code(r["host"]) for r in rows) == CLIENTS
    for row in rows:
        service = services[_code(row["host"])]
        port_range = service["sysctls"]["net.ipv4.ip_local_port_range"]
        assert row["`net.ipv4.ip_local_port_range`"] == port_range
        assert row["`nofile`"] == _nofile(service)
        assert ("NET_ADMIN" in row["capabilities"]) == ("NET_ADMIN" in service.get("cap_add", []))


# --- Caps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("row", _table("Caps"), ids=lambda r: _code(r["name"]))
def test_contract_doc_cap_value_is_the_codes(row: dict[str, str]) -> None:
    name = _code(row["name"])
    assert _quantity(row["value"]) == _code_value(name), f"{name}: the page says {row['value']}"
    assert row["what a client sees"], f"{name}: say what a client sees when it hits it"


def test_contract_doc_caps_table_names_every_registry_cap() -> None:
    documented = {_code(r["name"]) for r in _table("Caps")}
    missing = {f"{v.name}.{cap}" for v in SERVERS for cap in v.caps} - documented
    assert not missing, f"caps in socklab.registry missing from docs/protocols.md: {missing}"
