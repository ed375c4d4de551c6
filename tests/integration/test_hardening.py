"""Hostile clients and starved servers: every server keeps serving, within bounds.

The hostile clients are ``socklab.clients.scripted_hardening``, run on a
client host. Each test starts a spare copy of the server it attacks (its
own alias, sometimes with a lower limit), so the other tests' hosts are
never disturbed, and checks afterwards that the next client is served.
Ports, greetings and reply transforms come from socklab.registry: a check
names its variant (and framing) and the spare's alias as its host.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import pytest

from integration.harness import Host, TestLab, wait_until
from socklab.registry import ECHO_VARIANTS, VARIANTS

MODULE = "socklab.clients.scripted_hardening"

# How each TCP variant is talked to by a correct client (see scripted_hardening.Dialog):
# an echo server by its reply transform, exec on its framed port.
DIALOGS: dict[str, dict[str, Any]] = {
    **{name: {"kind": VARIANTS[name].reply} for name in ECHO_VARIANTS},
    "ftp": {"kind": "ftp"},
    "exec": {"framing": "framed", "kind": "framed"},
}


def spare(lab: TestLab, variant: str, alias: str, *extra: str, **overrides: Any) -> Host:
    """A copy of ``variant``'s server under ``alias``, with ``extra`` server options."""
    service = VARIANTS[variant].host
    command = [*lab.services[service]["command"], *extra]
    return lab.start(service, alias=alias, command=command, **overrides)


def served(client: Host, alias: str, variant: str) -> bool:
    """A correct client gets a correct answer from ``alias`` (a copy of ``variant``'s server)."""
    result = client.check("fd_exhaustion", module=MODULE, variant=variant, host=alias,
                          count=1, hold=0, **DIALOGS[variant])
    return bool(result["accepted_while_held"] == 1 and result["served_after_release"])


def not_restarted(server: Host) -> dict[str, Any]:
    server.container.reload()
    state = server.container.attrs["State"]
    assert state["Status"] == "running" and not state["OOMKilled"], state
    assert server.container.attrs["RestartCount"] == 0
    assert "Traceback" not in server.logs(), server.logs()
    return state


# --- Out of descriptors ---------------------------------------------------------

# The blocking tcp server holds two descriptors (listener, one client) and
# never runs out; the others (the concurrent ones) get a nofile this low, and
# more clients than that.
CONCURRENT_TCP = [name for name, variant in VARIANTS.items()
                  if variant.transport == "tcp" and variant.concurrent]
LOW_NOFILE = 48
CLIENTS = 80
BUSY_LOOP_CPU = 0.5  # CPU seconds in CPU_WINDOW: a loop spinning on accept uses ~all of it
CPU_WINDOW = 2.5


@pytest.mark.parametrize("variant", CONCURRENT_TCP)
def test_out_of_descriptors_keeps_serving_without_spinning(
        lab: TestLab, client1: Host, variant: str, record_property: pytest.RecordProperty) -> None:
    service = VARIANTS[variant].host
    alias = f"emfile-{service}"
    server = spare(lab, variant, alias,
                   ulimits={"nofile": {"soft": LOW_NOFILE, "hard": LOW_NOFILE}})
    try:
        marker = f"/tmp/quiet-{alias}"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            attack = pool.submit(client1.check, "fd_exhaustion", module=MODULE,
                                 variant=variant, host=alias, count=CLIENTS,
                                 quiet=CPU_WINDOW + 1.5, marker=marker, hold=4.0,
                                 **DIALOGS[variant])
            # The clients are held and quiet, the server is out of descriptors
            # with more waiting: it must not spin on its listener, which stays
            # readable.
            assert wait_until(lambda: client1.run("test", "-e", marker).exit_code == 0
                              or attack.done(), 60), server.logs()
            before = server.resources()["server_cpu_ns"]
            time.sleep(CPU_WINDOW)
            cpu = (server.resources()["server_cpu_ns"] - before) / 1e9
            result = attack.result()
        report = f"{result}, {cpu:.2f} CPU seconds in {CPU_WINDOW} s at EMFILE"
        record_property("figures", f"emfile {service}: {report}")
        report += f"\n{server.logs()}"
        assert "accept failed: Too many open files" in server.logs(), report
        assert 0 < result["accepted_while_held"] < CLIENTS, report  # clients were left waiting
        assert result["rounds"] >= 3 and result["failed_exchanges"] == 0, report
        assert cpu < BUSY_LOOP_CPU, report
        assert result["served_after_release"], report
        not_restarted(server)
    finally:
        lab.remove(server)


# --- Slow, greedy and rude clients ------------------------------------------------

# The idle timeout counts from a client's last byte: a client that sends a
# byte every TRICKLE seconds is served, though the whole message takes far
# longer than the timeout.
SHORT_IDLE = 2
TRICKLE = 0.7
TRICKLE_CASES: dict[str, dict[str, Any]] = {
    **{name: {"message": "slowly"} for name in ECHO_VARIANTS},
    "exec": {"framing": "framed", "message": "echo hi", "framed": True},
}


@pytest.mark.parametrize("variant", list(TRICKLE_CASES))
def test_a_byte_at_a_time_is_served_within_the_idle_timeout(lab: TestLab, client1: Host,
                                                            variant: str) -> None:
    alias = f"trickle-{VARIANTS[variant].host}"
    server = spare(lab, variant, alias, "--idle-timeout", str(SHORT_IDLE))
    try:
        result = client1.check("trickle", module=MODULE, variant=variant, host=alias,
                               interval=TRICKLE, **TRICKLE_CASES[variant])
        assert result["correct"], result
        assert result["bytes"] * TRICKLE > SHORT_IDLE  # longer in all than the idle timeout
        assert served(client1, alias, variant)
        not_restarted(server)
    finally:
        lab.remove(server)


# A client that sends without ever reading the replies: the server may hold
# a bounded amount for it (the readiness loop 4 MiB, Twisted 64 KiB, the
# blocking loop nothing), then stops reading and drops it at the idle
# timeout. The client offers far more than the server's memory limit.
GREEDY_LIMIT = 512 << 20
MEMORY_BOUND = 48 << 20  # growth of the container's peak memory we accept


@pytest.mark.parametrize("variant", ECHO_VARIANTS)
def test_a_client_that_never_reads_is_dropped_with_memory_bounded(
        lab: TestLab, client1: Host, variant: str, record_property: pytest.RecordProperty) -> None:
    service = VARIANTS[variant].host
    alias = f"greedy-{service}"
    server = spare(lab, variant, alias, "--idle-timeout", str(SHORT_IDLE))
    try:
        before = server.resources()
        result = client1.check("never_reads", module=MODULE, variant=variant, host=alias,
                               limit=GREEDY_LIMIT)
        after = server.resources()
        report = f"{result}; memory {before['current'] / 2**20:.1f} MiB before, " \
                 f"peak {after['peak'] / 2**20:.1f} MiB"
        record_property("figures", f"never-reads {service}: {report}")
        assert result["ended"] in ("reset", "closed"), report  # the server dropped it
        assert result["sent"] < GREEDY_LIMIT, report
        assert after["peak"] - before["current"] < MEMORY_BOUND, report
        assert "reason=idle-timeout" in server.logs(), server.logs()
        assert served(client1, alias, variant)
        not_restarted(server)
    finally:
        lab.remove(server)


# Half a message, then RST: the server must forget the connection, keep its
# other clients and serve the next one.
RESETS: dict[str, dict[str, Any]] = {
    **{name: {"data": "half a li"} for name in ECHO_VARIANTS},
    "ftp": {"data": '{"action": "put", "filen'},
    "exec": {"framing": "framed", "data": "\x00\x00\x00\x40{\"cmd\": \"ec"},
}


@pytest.mark.parametrize("variant", list(RESETS))
def test_a_reset_mid_message_is_forgotten(lab: TestLab, client1: Host, variant: str) -> None:
    service = VARIANTS[variant].host
    server = lab.host(service)
    closes_before = server.logs().count(" close peer=")
    for _ in range(3):
        client1.check("reset_mid_message", module=MODULE, variant=variant, **RESETS[variant])
    assert served(client1, service, variant)
    # Each reset connection was closed and logged, and so was the good client's.
    assert wait_until(lambda: server.logs().count(" close peer=") >= closes_before + 4, 10), \
        server.logs()
    not_restarted(server)
