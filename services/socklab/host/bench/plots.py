"""The PNG plots of a bench run (matplotlib, no display): requests/s, latency, idle curve.

- ``echo-rps.png``: requests/s of every echo server, one panel per message
  size, bars grouped by concurrency, the whiskers the min-max of the runs;
- ``echo-latency.png``: p50, p90 and p99 of every server at concurrency 10
  (or the largest measured), one panel per size, log scale;
- ``idle-latency.png``: the active client's p50 (and p99) latency against
  the number of idle connections, select and epoll: the O(n) versus
  O(active) lesson as a curve.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from socklab.host.bench.summary import human_size

COLOURS = {"tcp": "#8c564b", "select": "#1f77b4", "epoll": "#d62728", "twisted": "#9467bd",
           "asyncio": "#7f7f7f", "uvloop": "#2ca02c", "threaded": "#bcbd22"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _whiskers(cells: list[Mapping[str, Any]], key: str) -> tuple[list[float], list[list[float]]]:
    medians, low, high = [], [], []
    for cell in cells:
        s = cell["summary"][key]
        medians.append(s["median"])
        low.append(s["median"] - s["min"])
        high.append(s["max"] - s["median"])
    return medians, [low, high]


def plot_rps(echo: list[Mapping[str, Any]], path: Path) -> None:
    plt = _pyplot()
    sizes = sorted({c["size"] for c in echo})
    concurrencies = sorted({c["concurrency"] for c in echo})
    targets = list(dict.fromkeys(c["target"] for c in echo))
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4.2), squeeze=False)
    width = 0.8 / len(targets)
    for ax, size in zip(axes[0], sizes, strict=True):
        for i, target in enumerate(targets):
            cells = [c for c in echo if c["target"] == target and c["size"] == size]
            xs = [concurrencies.index(c["concurrency"]) + (i - len(targets) / 2 + 0.5) * width
                  for c in cells]
            medians, errors = _whiskers(cells, "rps")
            ax.bar(xs, medians, width, yerr=errors, capsize=2, label=target,
                   color=COLOURS.get(target))
        ax.set_xticks(range(len(concurrencies)), [f"c={c}" for c in concurrencies])
        ax.set_title(f"{human_size(size)} messages")
        ax.set_ylabel("requests/s (median, min–max)")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Echo requests/s per server (closed loop, across the Docker network)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(echo: list[Mapping[str, Any]], path: Path) -> None:
    plt = _pyplot()
    sizes = sorted({c["size"] for c in echo})
    concurrency = 10 if any(c["concurrency"] == 10 for c in echo) else max(
        c["concurrency"] for c in echo)
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4.2), squeeze=False)
    for ax, size in zip(axes[0], sizes, strict=True):
        cells = [c for c in echo if c["size"] == size and c["concurrency"] == concurrency]
        for i, key in enumerate(("p50", "p90", "p99")):
            values = [c["summary"][f"latency_ms.{key}"]["median"] for c in cells]
            xs = [j + (i - 1) * 0.27 for j in range(len(cells))]
            ax.bar(xs, values, 0.27, label=key)
        ax.set_xticks(range(len(cells)), [c["target"] for c in cells], rotation=30)
        ax.set_yscale("log")
        ax.set_ylabel("latency ms (median of runs)")
        ax.set_title(f"{human_size(size)}, concurrency {concurrency}")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_idle(idle: list[Mapping[str, Any]], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for target in dict.fromkeys(p["target"] for p in idle):
        points = [p for p in idle if p["target"] == target]
        xs = [p["idle"] for p in points]
        medians, errors = _whiskers(points, "latency_ms.p50")
        ax.errorbar(xs, medians, yerr=errors, marker="o", capsize=3, label=f"{target} p50",
                    color=COLOURS.get(target))
        ax.plot(xs, [p["summary"]["latency_ms.p99"]["median"] for p in points], ls="--",
                marker=".", color=COLOURS.get(target), label=f"{target} p99")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("idle connections open")
    ax.set_ylabel("active client latency ms (1 KiB echo)")
    ax.set_title("One active client among idle ones: select is O(n), epoll O(active)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(results: Mapping[str, Any], out: Path) -> list[str]:
    """Every plot the results allow; the file names written (relative to ``out``)."""
    written = []
    echo = results.get("echo") or []
    if echo:
        plot_rps(echo, out / "echo-rps.png")
        plot_latency(echo, out / "echo-latency.png")
        written += ["echo-rps.png", "echo-latency.png"]
    if results.get("idle"):
        plot_idle(results["idle"], out / "idle-latency.png")
        written.append("idle-latency.png")
    return written
