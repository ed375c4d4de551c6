"""The workloads of a bench run, each against servers it starts and removes (host side).

Every function starts the server container(s) it needs on the bench network,
drives the load generator (``socklab.loadgen.load``) on a client host, samples
the server's CPU time from the host meanwhile, and returns plain dicts: the
raw runs and their summary (median, min-max). The order of the steps is the
caller's; each step calls ``progress.step`` once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from socklab.host.bench import summary
from socklab.host.bench.grid import (
    PAIRED_CONCURRENCY,
    PAIRED_REFERENCES,
    PAIRED_SIZE,
    PAIRED_TARGET,
    EchoCell,
    Params,
    echo_cells,
    processes_for,
)
from socklab.host.bench.lab import BenchHost, BenchLab, ExecError, sampling_cpu
from socklab.host.bench.targets import ECHO_TARGETS, EchoTarget
from socklab.registry import VARIANTS

LOAD = ("python3", "-m", "socklab.loadgen.load")
HOLD_STATE = "/tmp/socklab-bench-hold.json"
HOLD_READY_TIMEOUT = 180.0
# After the idle connections close, the server reads 10,000 EOFs: let it settle.
HOLD_SETTLE = 1.0
IPERF_PORT = 5201
IPERF_WAIT = 10.0

Step = Callable[[str], None]


def _with_server_cpu(runs: list[dict[str, Any]],
                     samples: dict[str, list[tuple[float, float]]]) -> None:
    """Each run's server CPU and run-queue wait (seconds per second) over its window."""
    for run in runs:
        opened, closed = run["window"]
        loaded = run.get("loaded")
        run["server_cpu"] = summary.window_rate(samples["cpu"], opened, closed, loaded)
        run["server_wait"] = summary.window_rate(samples["wait"], opened, closed, loaded)
        run["server_samples"] = sum(1 for t, _ in samples["cpu"] if opened <= t <= closed)


def measured(server: BenchHost, client: BenchHost, *args: str) -> dict[str, Any]:
    """``client.json(*args)`` with ``server``'s CPU sampled; each run gets its server figures."""
    with sampling_cpu(server) as samples:
        raw = client.json(*args)
    _with_server_cpu(raw["runs"], samples)
    _with_server_cpu(raw.get("downloads") or [], samples)
    return raw


def start_echo(lab: BenchLab, target: EchoTarget) -> BenchHost:
    return lab.start(target.service, target.alias, target.command())


def echo_args(target: EchoTarget, size: int, concurrency: int, params: Params, duration: float,
              runs: int) -> list[str]:
    args = [*LOAD, "echo", "--host", target.alias, "--port", str(target.port),
            "--size", str(size), "--concurrency", str(concurrency),
            "--processes", str(processes_for(concurrency, params)),
            "--duration", str(duration), "--warmup", str(params.warmup),
            "--tail", str(params.warmup),
            "--runs", str(runs), "--greeting", str(len(target.greeting))]
    return [*args, "--upper"] if target.upper else args


def echo_spec(name: str) -> tuple[str, str, list[str] | None]:
    """(service, alias, command) of an echo server, for ``BenchLab.start``."""
    target = ECHO_TARGETS[name]
    return target.service, target.alias, target.command()


def run_echo_once(client: BenchHost, server: BenchHost, cell: EchoCell,
                  params: Params) -> dict[str, Any]:
    """One measured run of one echo cell; its raw figures with the server's CPU beside them."""
    target = ECHO_TARGETS[cell.target]
    args = echo_args(target, cell.size, cell.concurrency, params, params.duration, 1)
    raw = measured(server, client, *args)
    return {**raw["runs"][0], "processes": raw["processes"]}


def run_echo_interleaved(client: BenchHost, servers: dict[str, BenchHost], params: Params,
                         step: Step, failed: Callable[[str, Exception], None]
                         ) -> list[dict[str, Any]]:
    """Every echo cell ``params.runs`` times, the servers taking turns run by run.

    Run 1 of every cell, then run 2 of every cell, …: a burst of load from
    other work on a shared machine then lands on every server alike instead
    of on whichever one happened to be measured at that minute.
    """
    cells = [c for c in echo_cells(params) if c.target in servers]
    runs: dict[str, list[dict[str, Any]]] = {c.key: [] for c in cells}
    broken: set[str] = set()
    for repeat in range(params.runs):
        for cell in cells:
            if cell.target in broken:
                continue
            step(f"echo {cell.target} {cell.size // 1024} KiB c={cell.concurrency} "
                 f"run {repeat + 1}/{params.runs}")
            try:
                runs[cell.key].append(run_echo_once(client, servers[cell.target], cell, params))
            except Exception as error:  # recorded by ``failed``
                broken.add(cell.target)  # one broken server must not cost the others
                failed(f"echo {cell.target}", error)
    return [{"target": c.target, "reference": ECHO_TARGETS[c.target].reference, "size": c.size,
             "concurrency": c.concurrency, "processes": processes_for(c.concurrency, params),
             "runs": runs[c.key], "summary": summary.echo_summary(runs[c.key])}
            for c in cells if runs[c.key]]


def paired_args(target: EchoTarget, reference: EchoTarget, params: Params) -> list[str]:
    """``load.py echo --versus``: the target and a reference in one run, taking turns."""
    args = echo_args(target, PAIRED_SIZE, PAIRED_CONCURRENCY, params, params.paired_seconds, 1)
    return [*args, "--versus", reference.alias, "--versus-port", str(reference.port),
            "--turn", str(params.paired_turn)]


def run_echo_paired(client: BenchHost, servers: dict[str, BenchHost], params: Params,
                    step: Step) -> list[dict[str, Any]]:
    """PAIRED_TARGET ÷ each reference, measured in turns, ``params.paired_runs`` times each.

    Two rates measured seconds apart on a shared machine differ by a third (the
    cells above); taking turns every ``paired_turn`` seconds in one run, a drift
    of the machine weighs on both alike and their ratio moves little. The
    references take turns run by run as well. Needs the servers of the echo
    cells, still up.
    """
    target = ECHO_TARGETS[PAIRED_TARGET]
    references = [name for name in PAIRED_REFERENCES if name in servers]
    if PAIRED_TARGET not in servers or not references:
        return []
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in references}
    for repeat in range(params.paired_runs):
        for name in references:
            step(f"{PAIRED_TARGET} and {name} in turns run {repeat + 1}/{params.paired_runs}")
            raw = client.json(*paired_args(target, ECHO_TARGETS[name], params))
            run = raw["runs"][0]
            runs[name].append({"ratio": run["ratio"], "rps": run["sides"][0]["rps"],
                               "reference_rps": run["sides"][1]["rps"],
                               "block_ratios": run["block_ratios"], "window": run["window"]})
    return [{"target": PAIRED_TARGET, "reference": name, "size": PAIRED_SIZE,
             "concurrency": PAIRED_CONCURRENCY, "turn": params.paired_turn,
             "seconds": params.paired_seconds, "runs": runs[name],
             "summary": summary.summarize(runs[name], ("ratio", "rps", "reference_rps"))}
            for name in references]


def hold_connections(holder: BenchHost, target: EchoTarget, count: int) -> dict[str, Any]:
    """Open ``count`` idle connections from ``holder``; returns the holder's state."""
    holder.run("rm", "-f", HOLD_STATE)
    holder.start_detached(*LOAD, "hold", "--host", target.alias, "--port", str(target.port),
                          "--count", str(count), "--state", HOLD_STATE)
    deadline = time.monotonic() + HOLD_READY_TIMEOUT
    while time.monotonic() < deadline:
        code, out, _ = holder.run("cat", HOLD_STATE)
        if code == 0 and out.strip():
            return json.loads(out)
        time.sleep(0.2)
    # The holder must not go on opening connections, nor write its state late
    # for the next step to read.
    holder.run("pkill", "-f", "socklab.loadgen.load hold")
    holder.run("rm", "-f", HOLD_STATE)
    raise TimeoutError(f"{count} idle connections to {target.alias} not open within "
                       f"{HOLD_READY_TIMEOUT:.0f} s")


def release_connections(holder: BenchHost, state: dict[str, Any]) -> None:
    """Stop the holder process, by the PID it wrote, and let the server see the EOFs."""
    holder.run("kill", str(state["pid"]))
    time.sleep(HOLD_SETTLE)


def _memory(server: BenchHost) -> dict[str, int | None]:
    return {"rss": server.server_rss(), "cgroup": server.memory_bytes()}


def run_idle(lab: BenchLab, active: BenchHost, holder: BenchHost, name: str,
             counts: tuple[int, ...], params: Params, step: Step) -> list[dict[str, Any]]:
    """Latency of one active client while ``count`` idle connections are open, for each count."""
    target = ECHO_TARGETS[name]
    server = start_echo(lab, target)
    points = []
    try:
        # Memory is measured from the fresh server's: freed memory is kept for reuse, so
        # the growth from one point to the next undercounts.
        baseline = _memory(server)
        for count in counts:
            step(f"idle {name} {count} connections")
            before = _memory(server)
            state = hold_connections(holder, target, count)
            try:
                after = _memory(server)
                args = echo_args(target, 1024, 1, params, params.idle_duration,
                                 params.idle_runs)
                with sampling_cpu(server) as samples:
                    raw = active.json(*args)
            finally:
                release_connections(holder, state)
            _with_server_cpu(raw["runs"], samples)
            points.append({"target": name, "idle": count, "opened": state["open"],
                           "failures": state["failures"], "memory_before": before,
                           "memory_after": after,
                           "memory_baseline": baseline,
                           "memory_per_connection": summary.per_connection(baseline, after,
                                                                           state["open"]),
                           "runs": raw["runs"], "summary": summary.echo_summary(raw["runs"])})
    finally:
        lab.remove(server)
    return points


def run_memory(lab: BenchLab, holder: BenchHost, name: str, count: int,
               step: Step) -> dict[str, Any]:
    """Memory of one server before and with ``count`` idle connections."""
    step(f"memory {name} {count} connections")
    target = ECHO_TARGETS[name]
    server = start_echo(lab, target)
    try:
        before = _memory(server)
        state = hold_connections(holder, target, count)
        try:
            time.sleep(HOLD_SETTLE)  # the last accepts and their session objects
            after = _memory(server)
        finally:
            release_connections(holder, state)
    finally:
        lab.remove(server)
    return {"target": name, "connections": state["open"], "failures": state["failures"],
            "before": before, "after": after,
            "per_connection": summary.per_connection(before, after, state["open"])}


def _iperf_once(client: BenchHost, server: BenchHost, seconds: float,
                reverse: bool = False) -> dict[str, Any]:
    """One iperf3 run from the client to the server (``reverse``: the server sends)."""
    server.start_detached("iperf3", "-s", "-1", "-p", str(IPERF_PORT))
    deadline = time.monotonic() + IPERF_WAIT
    while True:
        try:
            data = client.json("iperf3", "-c", server.alias, "-p", str(IPERF_PORT), "-t",
                               f"{seconds:g}", "-J", *(["-R"] if reverse else []),
                               timeout=int(seconds) + 30, whole=True)
            break
        except ExecError:  # the server is not listening yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    received = data["end"]["sum_received"]
    return {"mib_s": received["bits_per_second"] / 8 / (1 << 20),
            "gbit_s": received["bits_per_second"] / 1e9, "seconds": received["seconds"],
            "retransmits": data["end"]["sum_sent"].get("retransmits")}


def run_iperf_and_ftp(lab: BenchLab, client: BenchHost, params: Params,
                      step: Step) -> dict[str, Any]:
    """iperf3 both ways between the client host and ftp-server's container, then the timed
    uploads and downloads of each size (iperf3 -R, the server sending, is the downloads'
    reference)."""
    ftp = VARIANTS["ftp"]
    server = lab.start(ftp.host)
    bulk = ("mib_s", "seconds", "server_cpu")
    try:
        iperf = {}
        for key, reverse, way in (("iperf3", False, f"{client.alias} -> {server.alias}"),
                                  ("iperf3_reverse", True,
                                   f"{server.alias} -> {client.alias} (-R)")):
            step(f"iperf3 {way}")
            runs = [_iperf_once(client, server, params.iperf_seconds, reverse)
                    for _ in range(params.runs)]
            iperf[key] = {"runs": runs, "summary": summary.summarize(runs, ("mib_s", "gbit_s"))}
        transfers = []
        for size in params.ftp_sizes:
            step(f"ftp upload and download {summary.human_size(size)}")
            raw = measured(server, client, *LOAD, "ftp", "--host", server.alias, "--port",
                           str(ftp.main_port), "--size", str(size), "--runs",
                           str(params.ftp_runs), "--downloads", str(params.ftp_runs))
            downloads = raw.get("downloads") or []
            transfers.append({
                "size": size, "sha256": raw["sha256"], "runs": raw["runs"],
                "verified": all(r["verified"] for r in raw["runs"]),
                "summary": summary.summarize(raw["runs"], bulk),
                "downloads": downloads,
                "downloads_verified": bool(downloads) and all(r["verified"] for r in downloads),
                "download_summary": summary.summarize(downloads, bulk)})
    finally:
        lab.remove(server)
    return {**iperf, "ftp": transfers}


def run_exec(lab: BenchLab, client: BenchHost, params: Params, step: Step) -> list[dict[str, Any]]:
    server = lab.start(VARIANTS["exec"].host)
    results = []
    try:
        for mode in params.exec_modes:
            step(f"exec {mode}")
            raw = measured(server, client, *LOAD, "exec", "--host", server.alias,
                           "--mode", mode, "--duration", str(params.exec_duration),
                           "--runs", str(params.runs))
            results.append({"mode": mode, "runs": raw["runs"],
                            "summary": summary.exec_summary(raw["runs"])})
    finally:
        lab.remove(server)
    return results


def run_udp(lab: BenchLab, client: BenchHost, params: Params, step: Step) -> list[dict[str, Any]]:
    udp = VARIANTS["udp"]
    server = lab.start(udp.host)
    results = []
    try:
        for rate in params.udp_rates:
            step(f"udp {rate if rate else 'max'} datagrams/s")
            raw = measured(server, client, *LOAD, "udp", "--host", server.alias, "--port",
                           str(udp.main_port), "--rate", str(rate), "--duration",
                           str(params.udp_duration), "--size", str(params.udp_size),
                           "--runs", str(params.runs))
            results.append({"rate": rate, "runs": raw["runs"],
                            "summary": summary.summarize(raw["runs"], (
                                "sent_s", "answered_s", "loss", "server_cpu"))})
    finally:
        lab.remove(server)
    return results
