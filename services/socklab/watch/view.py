"""A snapshot as text for a terminal: one block per host, servers first. Pure."""

from __future__ import annotations

import time
from typing import Any

# The states worth a column; the others are shown when not zero.
SHORT = {"ESTABLISHED": "ESTAB", "SYN_SENT": "SYN-S", "SYN_RECV": "SYN-R",
         "FIN_WAIT1": "FIN-W1", "FIN_WAIT2": "FIN-W2", "TIME_WAIT": "TIME-W",
         "CLOSE_WAIT": "CLOSE-W", "LAST_ACK": "LAST-A", "CLOSING": "CLOSING"}


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "?"
    if unit == "B":
        return f"{value / (1 << 20):.1f} MiB"
    return f"{value:,.0f}"


def host_lines(name: str, host: dict[str, Any], events: int = 3) -> list[str]:
    """One host: its process, listeners, states, ports, counters and last events."""
    if host.get("problem"):
        return [f"{name}  ({host.get('container', '')}): {host['problem']}"]
    cpu = host.get("cpu")
    process = host.get("process") or {}
    head = (f"{name} [{host.get('role') or '?'}]  {process.get('name', '-')}: "
            f"fds {_number(host.get('fds'))}/{_number(host.get('nofile'))}  "
            f"threads {_number(host.get('threads'))}  rss {_number(host.get('rss'), 'B')}  "
            f"cpu {'?' if cpu is None else f'{cpu:.0%}'}")
    lines = [head]
    for listener in host.get("listeners", []):
        lines.append(f"  listen :{listener['port']:<5}  accept queue "
                     f"{listener['queued']}/{listener['limit']}  "
                     f"syn_recv {listener['syn_recv']}")
    states = host.get("states", {})
    shown = [f"{SHORT.get(state, state)} {count}" for state, count in states.items()
             if count or state in ("ESTABLISHED", "TIME_WAIT")]
    lines.append("  tcp  " + "  ".join(shown))
    ports = host.get("ports") or {}
    if host.get("role") != "server" and ports.get("size"):
        lines.append(f"  local ports {ports['in_use']:,}/{ports['size']:,} "
                     f"({ports['first']}-{ports['last']})")
    moving = [f"{name} +{c['per_second']:g}/s" for name, c in host.get("counters", {}).items()
              if c["per_second"]]
    totals = [f"{name} {c['total']:,}" for name, c in host.get("counters", {}).items()
              if c["total"]]
    if moving or totals:
        lines.append("  " + ("  ".join(moving) if moving else "counters: " + "  ".join(totals)))
    lines += [f"  | {event}" for event in host.get("events", [])[-events:]]
    return lines


def render(snapshot: dict[str, Any], width: int = 100) -> str:
    """The whole screen: a title line, then each host (servers, then clients)."""
    stamp = time.strftime("%H:%M:%S", time.localtime(snapshot["time"]))
    title = f"socklab watch: lab {snapshot['lab']}  {stamp}  (Ctrl-C to stop)"
    lines = [title, ""]
    if snapshot.get("problem"):
        lines += [f"! {snapshot['problem']}", ""]
    hosts = snapshot["hosts"]
    if not hosts:
        lines.append("no running host: is the lab up? (make up, make ps)")
    order = sorted(hosts, key=lambda n: (hosts[n].get("role") != "server", n))
    for name in order:
        lines += [*host_lines(name, hosts[name]), ""]
    return "\n".join(line[:width] for line in lines)
