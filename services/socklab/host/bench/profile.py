"""Where a server spends its CPU under the benchmark's load: py-spy from the host.

    python -m socklab.host.bench profile epoll --size 1024 --concurrency 10 --seconds 8
    python -m socklab.host.bench profile ftp --size 1073741824

Starts the server and a client host on a private bench network, runs the
load generator against it, and meanwhile samples the server process with
``py-spy record`` (run as root on the host, attaching to the server's host
PID: the container needs no extra capability). Prints the functions with the
most samples, by self time and by total time, and the raw collapsed stacks'
path. py-spy comes from PyPI (``pip install py-spy``); it is not a test
dependency.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from socklab.host.bench import workloads
from socklab.host.bench.grid import FULL, Params
from socklab.host.bench.lab import BenchLab
from socklab.host.bench.targets import ECHO_TARGETS
from socklab.registry import CLIENTS, VARIANTS

SAMPLE_RATE = 200  # per second: enough samples in a few seconds, little overhead
TOP = 15


def frame_name(frame: str) -> str:
    """``serve_forever (socklab/servers/readiness.py:120)`` -> ``serve_forever (readiness.py)``."""
    name, _, where = frame.partition(" (")
    file = where.split(":", 1)[0].rsplit("/", 1)[-1]
    return f"{name} ({file})" if file else name


def tally(collapsed: str) -> tuple[Counter[str], Counter[str], int]:
    """Self and total samples per function from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    return own, total, samples


def format_tally(own: Counter[str], total: Counter[str], samples: int, top: int = TOP) -> str:
    lines = [f"{samples} samples", "", "self %  function"]
    lines += [f"{100 * n / samples:5.1f}  {name}" for name, n in own.most_common(top)]
    lines += ["", "total %  function"]
    lines += [f"{100 * n / samples:5.1f}  {name}" for name, n in total.most_common(top)]
    return "\n".join(lines)


def _load_args(kind: str, size: int, concurrency: int, seconds: float,
               params: Params) -> tuple[str, str, list[str] | None, list[str]]:
    if kind == "ftp":
        ftp = VARIANTS["ftp"]
        return ftp.host, ftp.host, None, [
            *workloads.LOAD, "ftp", "--host", ftp.host, "--port", str(ftp.main_port),
            "--size", str(size), "--runs", "1"]
    target = ECHO_TARGETS[kind]
    service, alias, command = workloads.echo_spec(kind)
    args = workloads.echo_args(target, size, concurrency, params, seconds + 2, 1)
    return service, alias, command, args


def profile(kind: str, size: int, concurrency: int, seconds: float, image: str,
            out: Path) -> dict[str, Any]:
    """Run the load against ``kind`` and py-spy its server for ``seconds``; the tallies."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    service, alias, command, args = _load_args(kind, size, concurrency, seconds, FULL)
    run_id = f"profile-{os.getpid()}"
    with BenchLab(image, run_id) as lab:
        client, server = lab.start_many([(CLIENTS[0], None, None), (service, alias, command)])
        pid = server.server_pid()
        result: dict[str, Any] = {}
        load = threading.Thread(target=lambda: result.update(client.json(*args)), daemon=True)
        load.start()
        raw = out / f"profile-{kind}-{size}-c{concurrency}.txt"
        subprocess.run([spy, "record", "--pid", str(pid), "--duration", f"{seconds:g}",
                        "--rate", str(SAMPLE_RATE), "--format", "raw", "--output", str(raw)],
                       check=True, capture_output=True)
        load.join()
    own, total, samples = tally(raw.read_text())
    return {"raw": str(raw), "text": format_tally(own, total, samples), "load": result}
