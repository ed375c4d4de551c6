"""One bench run, start to end: hosts up, every workload, results.json, report.md, plots.

A workload that fails is recorded under ``errors`` and the run goes on: one
broken server must not cost the figures of the others. Whatever happens
(an error, Ctrl-C, SIGTERM), the run's containers, network and volumes are
removed before it returns.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from socklab.host.bench import workloads
from socklab.host.bench.grid import Params, count_steps
from socklab.host.bench.lab import BenchHost, BenchLab, pinned_cpus
from socklab.host.bench.progress import Progress

VERSIONS_SCRIPT = (
    "import json, platform, twisted, uvloop; print(json.dumps({'python': "
    "platform.python_version(), 'twisted': twisted.__version__, 'uvloop': uvloop.__version__}))"
)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so ``finally`` blocks clean up as on Ctrl-C."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory = next(int(line.split()[1]) * 1024 for line in
                  Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    docker = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                            capture_output=True, text=True, check=False).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_bytes": memory,
            "kernel": platform.release(), "docker": docker, "hostname": platform.node()}


def image_versions(client: BenchHost) -> dict[str, Any]:
    versions = client.json("python3", "-c", VERSIONS_SCRIPT)
    _, out, _ = client.run("iperf3", "--version")
    versions["iperf3"] = out.split("\n", 1)[0].strip()
    return versions


def _attempt(results: dict[str, Any], name: str, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except Exception as error:  # recorded; the other workloads still run
        results["errors"].append({"workload": name, "error": f"{type(error).__name__}: "
                                  f"{error}", "traceback": traceback.format_exc()[-3000:]})
        return None


def run_workloads(lab: BenchLab, params: Params, results: dict[str, Any],
                  progress: Progress) -> None:
    # The clients and every echo server start together (idle servers cost no CPU),
    # and the servers take turns run by run (workloads.run_echo_interleaved).
    names = list(params.echo_targets)
    client_1, client_2, *servers = lab.start_many(
        [("client-1", None, None), ("client-2", None, None),
         *(workloads.echo_spec(name) for name in names)])
    results["versions"] = image_versions(client_1)
    step = progress.step

    def failed(workload: str, error: Exception) -> None:
        results["errors"].append({"workload": workload, "error": f"{type(error).__name__}: "
                                  f"{error}", "traceback": traceback.format_exc()[-3000:]})

    try:
        by_name = dict(zip(names, servers, strict=True))
        results["echo"] = workloads.run_echo_interleaved(client_1, by_name, params, step, failed)
        results["paired"] = _attempt(results, "echo in turns", lambda: workloads.run_echo_paired(
            client_1, by_name, params, step)) or []
    finally:
        for server in servers:
            lab.remove(server)
    idle: list[dict[str, Any]] = results.setdefault("idle", [])
    for name, counts in params.idle_counts.items():
        idle.extend(_attempt(results, f"idle {name}", lambda name=name, counts=counts:
                             workloads.run_idle(lab, client_1, client_2, name, counts, params,
                                                step)) or [])
    results["memory"] = [m for m in (
        _attempt(results, f"memory {name}", lambda name=name: workloads.run_memory(
            lab, client_2, name, params.memory_connections, step))
        for name in params.memory_targets) if m]
    bulk = _attempt(results, "iperf3 and ftp",
                    lambda: workloads.run_iperf_and_ftp(lab, client_1, params, step)) or {}
    results["iperf3"], results["ftp"] = bulk.get("iperf3"), bulk.get("ftp", [])
    results["iperf3_reverse"] = bulk.get("iperf3_reverse")
    results["exec"] = _attempt(results, "exec",
                               lambda: workloads.run_exec(lab, client_1, params, step)) or []
    results["udp"] = _attempt(results, "udp",
                              lambda: workloads.run_udp(lab, client_1, params, step)) or []


def run(params: Params, image: str, out_root: Path, run_id: str | None = None) -> Path:
    """Run every workload; write the results directory; return its path.

    A workload that failed is listed under ``errors`` in results.json and report.md.
    """
    from socklab.host.bench import plots, report

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_id = run_id or f"{stamp}-{os.getpid()}"
    out = out_root / f"bench-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"), "image": image,
        "run_id": run_id, "machine": machine(), "params": params.to_json(),
        "pinning": {"server": pinned_cpus("server"), "client": pinned_cpus("client")},
        "load_average_before": list(os.getloadavg()), "errors": []}
    progress = Progress(count_steps(params))
    began = time.monotonic()
    with sigterm_as_interrupt():
        try:
            with BenchLab(image, run_id) as lab:
                run_workloads(lab, params, results, progress)
        except KeyboardInterrupt:
            results["errors"].append({"workload": "run", "error": "interrupted"})
            raise
        except Exception as error:  # hosts that never started: recorded, and the report says so
            results["errors"].append({"workload": "run", "error": f"{type(error).__name__}: "
                                                                  f"{error}"})
        finally:
            results["seconds"] = round(time.monotonic() - began, 1)
            results["load_average_after"] = list(os.getloadavg())
            results["load_average_seen"] = _load_seen(progress.loads)
            results["targets"] = report.targets(results)
            (out / "results.json").write_text(json.dumps(results, indent=1))
    progress.finish(f"all steps in {results['seconds']:.0f} s")
    (out / "report.md").write_text(report.render(results, plots.write_all(results, out)))
    return out


def _load_seen(loads: list[float]) -> dict[str, float] | None:
    if not loads:
        return None
    return {"min": min(loads), "max": max(loads), "mean": sum(loads) / len(loads)}
