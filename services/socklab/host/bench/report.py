"""report.md from results.json: the tables, the ratios to the references, the targets. No I/O.

Every figure is the median of N runs with the min-max range beside it. Echo
servers are compared at the same message size and concurrency with the
uvloop and asyncio references; uploads with iperf3 between the same two
containers, downloads with iperf3 -R (the server sending). The targets
(docs/bench.md, "The targets") are reported, never asserted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from socklab.host.bench.summary import human_size
from socklab.registry import CLIENTS, VARIANTS

REFERENCES = ("uvloop", "asyncio")
# The targets of docs/bench.md: what the lab's servers should reach against the references.
EPOLL_VS_ASYNCIO = 1.0
EPOLL_VS_UVLOOP = 0.8
FTP_VS_IPERF = 0.5
FTP_GET_VS_IPERF = 0.7
IDLE_LATENCY_GROWTH = 1.10
TARGET_SIZE, TARGET_CONCURRENCY = 1024, 10
FTP_TARGET_SIZE = 1 << 30


def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def spread_text(spread: Mapping[str, Any] | None, digits: int = 0, scale: float = 1.0) -> str:
    """``12,345 (11,900–12,800)``; the range is left out for a single run."""
    if not spread:
        return "–"
    median = number(spread["median"] * scale, digits)
    if spread.get("runs", 1) < 2:
        return median
    return (f"{median} ({number(spread['min'] * scale, digits)}–"
            f"{number(spread['max'] * scale, digits)})")


def ratio_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def median(summary: Mapping[str, Any], key: str) -> float | None:
    found = summary.get(key)
    return found["median"] if found else None


def safe_ratio(value: float | None, reference: float | None) -> float | None:
    return value / reference if value is not None and reference else None


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def echo_index(echo: list[Mapping[str, Any]]) -> dict[tuple[str, int, int], Mapping[str, Any]]:
    return {(c["target"], c["size"], c["concurrency"]): c for c in echo}


def echo_ratio(index: Mapping[tuple[str, int, int], Mapping[str, Any]], target: str, size: int,
               concurrency: int, reference: str, key: str = "rps") -> float | None:
    """A cell's median ``key`` over the reference's at the same size and concurrency."""
    cell, ref = index.get((target, size, concurrency)), index.get((reference, size, concurrency))
    if not cell or not ref:
        return None
    return safe_ratio(median(cell["summary"], key), median(ref["summary"], key))


CPU_HEADER = ["server CPU %", "server wait %", "client CPU %", "client wait %"]


def cpu_cells(summary: Mapping[str, Any]) -> list[str]:
    """Server CPU and run-queue wait, and the busiest load-generator process's (percent)."""
    return [spread_text(summary.get(key), 0, 100)
            for key in ("server_cpu", "server_wait", "client_cpu_max", "client_wait_max")]


def echo_tables(echo: list[Mapping[str, Any]]) -> list[str]:
    """One table per message size: every server and concurrency, ratios to the references."""
    index = echo_index(echo)
    lines: list[str] = []
    for size in sorted({c["size"] for c in echo}):
        lines += ["", f"### Echo, {human_size(size)} messages", ""]
        rows = []
        for cell in [c for c in echo if c["size"] == size]:
            s = cell["summary"]
            rows.append([
                cell["target"] + (" (ref)" if cell["reference"] else ""),
                str(cell["concurrency"]), spread_text(s["rps"]), spread_text(s["mib_s"], 1),
                *(spread_text(s[f"latency_ms.{k}"], 3) for k in ("p50", "p90", "p99")),
                spread_text(s["latency_ms.max"], 1),
                *(ratio_text(echo_ratio(index, cell["target"], size, cell["concurrency"], r))
                  for r in REFERENCES),
                *cpu_cells(s)])
        lines += table(["server", "conc.", "requests/s", "MiB/s", "p50 ms", "p90 ms", "p99 ms",
                        "max ms", "× uvloop", "× asyncio", *CPU_HEADER], rows)
    return lines


def headline(echo: list[Mapping[str, Any]]) -> list[str]:
    """Requests/s at 1 KiB for every server and concurrency, with ratios at concurrency 10."""
    index = echo_index(echo)
    concurrencies = sorted({c["concurrency"] for c in echo})
    targets = list(dict.fromkeys(c["target"] for c in echo))
    rows = []
    for target in targets:
        cells = [index.get((target, TARGET_SIZE, c)) for c in concurrencies]
        rows.append([target, *(spread_text(c["summary"]["rps"]) if c else "–" for c in cells),
                     *(ratio_text(echo_ratio(index, target, TARGET_SIZE, TARGET_CONCURRENCY, r))
                       for r in REFERENCES)])
    header = ["server", *(f"req/s c={c}" for c in concurrencies),
              *(f"× {r} (c={TARGET_CONCURRENCY})" for r in REFERENCES)]
    return table(header, rows)


def idle_table(idle: list[Mapping[str, Any]]) -> list[str]:
    rows = []
    for point in idle:
        s = point["summary"]
        base = next((p for p in idle if p["target"] == point["target"]), point)
        growth = safe_ratio(median(s, "latency_ms.p50"), median(base["summary"],
                                                                "latency_ms.p50"))
        per_conn = point.get("memory_per_connection", {}).get("rss")
        rows.append([point["target"], f"{point['idle']:,}", f"{point['opened']:,}",
                     spread_text(s["latency_ms.p50"], 3), spread_text(s["latency_ms.p99"], 3),
                     spread_text(s["rps"]), ratio_text(growth), *cpu_cells(s),
                     number(per_conn / 1024, 2) if per_conn is not None else "–"])
    return table(["server", "idle connections", "opened", "active p50 ms", "active p99 ms",
                  "active req/s", "p50 × first point", *CPU_HEADER,
                  "server RSS KiB per idle conn."], rows)


def memory_table(memory: list[Mapping[str, Any]]) -> list[str]:
    rows = []
    for m in memory:
        per = m["per_connection"]
        rows.append([m["target"], f"{m['connections']:,}",
                     number((m["before"]["rss"] or 0) / (1 << 20), 1),
                     number((m["after"]["rss"] or 0) / (1 << 20), 1),
                     number(per["rss"] / 1024, 2) if per.get("rss") is not None else "–",
                     number(per["cgroup"] / 1024, 2) if per.get("cgroup") is not None else "–"])
    return table(["server", "idle connections", "RSS before MiB", "RSS after MiB",
                  "RSS KiB / conn.", "cgroup KiB / conn."], rows)


def bulk_tables(results: Mapping[str, Any]) -> list[str]:
    """iperf3 both ways, then each file's upload and download beside their iperf3 direction."""
    client, server = CLIENTS[0], VARIANTS["ftp"].host
    ways = ((f"{client} → {server}", results.get("iperf3")),
            (f"{server} → {client} (-R)", results.get("iperf3_reverse")))
    lines = ["", "### iperf3 between client-1 and ftp-server's container", ""]
    lines += table(["direction", "MiB/s", "Gbit/s", "runs"], [[
        way, spread_text(iperf["summary"]["mib_s"]) if iperf else "–",
        spread_text(iperf["summary"]["gbit_s"], 2) if iperf else "–",
        str(len(iperf["runs"])) if iperf else "0"] for way, iperf in ways])
    lines += ["", "### ftp uploads (sha256 checked by the server) and downloads (sha256 "
              "checked by the client after the clock stops)", ""]
    rows = []
    for transfer in results.get("ftp") or []:
        for direction, figures, verified, (_, iperf) in (
                ("put", transfer["summary"], transfer["verified"], ways[0]),
                ("get", transfer.get("download_summary"), transfer.get("downloads_verified"),
                 ways[1])):
            if not figures or not figures.get("mib_s"):
                continue
            iperf_mib = median(iperf["summary"], "mib_s") if iperf else None
            rows.append([human_size(transfer["size"]), direction,
                         spread_text(figures["mib_s"], 1), spread_text(figures["seconds"], 3),
                         ratio_text(safe_ratio(median(figures, "mib_s"), iperf_mib)),
                         "yes" if verified else "NO",
                         spread_text(figures["server_cpu"], 0, 100)])
    return lines + table(["file", "way", "MiB/s", "seconds", "× iperf3 that way",
                          "sha256 verified", "server CPU %"], rows)


def paired_table(paired: list[Mapping[str, Any]]) -> list[str]:
    """The target ratios measured in turns: one row per reference."""
    if not paired:
        return ["Not measured in this run."]
    first = paired[0]
    lines = [f"{first['target']} and each reference in one load-generator run, taking turns "
             f"of {first['turn']:g} s (A B B A), {first['seconds']:g} s each side, "
             f"{human_size(first['size'])} messages, {first['concurrency']} connections: a "
             "drift of the machine weighs on both sides alike. Median (min–max) over "
             f"{len(first['runs'])} run{'s' if len(first['runs']) != 1 else ''}.", ""]
    return lines + table(["server ÷ reference", "ratio", "server req/s", "reference req/s"], [
        [f"{p['target']} ÷ {p['reference']}", spread_text(p["summary"]["ratio"], 3),
         spread_text(p["summary"]["rps"]), spread_text(p["summary"]["reference_rps"])]
        for p in paired])


def exec_table(execs: list[Mapping[str, Any]]) -> list[str]:
    rows = [[e["mode"], spread_text(e["summary"]["commands_s"], 1),
             spread_text(e["summary"]["latency_ms.p50"], 2),
             spread_text(e["summary"]["latency_ms.p99"], 2), *cpu_cells(e["summary"])]
            for e in execs]
    return table(["framing", "commands/s", "p50 ms", "p99 ms", *CPU_HEADER], rows)


def udp_table(udp: list[Mapping[str, Any]]) -> list[str]:
    rows = [[number(u["rate"]) if u["rate"] else "as fast as possible",
             spread_text(u["summary"]["sent_s"]), spread_text(u["summary"]["answered_s"]),
             spread_text(u["summary"]["loss"], 1, 100),
             spread_text(u["summary"]["server_cpu"], 0, 100)] for u in udp]
    return table(["offered datagrams/s", "sent/s", "answered/s", "loss %", "server CPU %"], rows)


def targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The targets of docs/bench.md: figure, goal, and whether it was met (None: unmeasured)."""
    index = echo_index(results.get("echo") or [])
    paired = {p["reference"]: p for p in results.get("paired") or [] if p["target"] == "epoll"}
    found = []
    for reference, goal in (("asyncio", EPOLL_VS_ASYNCIO), ("uvloop", EPOLL_VS_UVLOOP)):
        # Measured in turns where the run has it (steadier); else the two cells' ratio.
        value = median(paired[reference]["summary"], "ratio") if reference in paired else \
            echo_ratio(index, "epoll", TARGET_SIZE, TARGET_CONCURRENCY, reference)
        how = " (in turns)" if reference in paired else ""
        found.append({"target": f"epoll 1 KiB c=10 requests/s ÷ {reference}{how}",
                      "value": value, "goal": f"≥ {goal:.2f}",
                      "met": None if value is None else value >= goal})
    transfer = next((u for u in results.get("ftp") or [] if u["size"] == FTP_TARGET_SIZE), None)
    for name, figures_key, iperf_key, goal in (
            ("ftp 1 GiB upload MiB/s ÷ iperf3", "summary", "iperf3", FTP_VS_IPERF),
            ("ftp 1 GiB download MiB/s ÷ iperf3 -R", "download_summary", "iperf3_reverse",
             FTP_GET_VS_IPERF)):
        iperf = results.get(iperf_key)
        figures = (transfer or {}).get(figures_key)
        value = safe_ratio(median(figures, "mib_s"), median(iperf["summary"], "mib_s")) \
            if figures and iperf else None
        found.append({"target": name, "value": value, "goal": f"≥ {goal:.2f}",
                      "met": None if value is None else value >= goal})
    epoll = [p for p in results.get("idle") or [] if p["target"] == "epoll"]
    value = safe_ratio(median(epoll[-1]["summary"], "latency_ms.p50"),
                       median(epoll[0]["summary"], "latency_ms.p50")) if len(epoll) > 1 else None
    span = f"{epoll[0]['idle']:,} → {epoll[-1]['idle']:,}" if len(epoll) > 1 else "–"
    found.append({"target": f"epoll active p50 latency, idle {span} (ratio)", "value": value,
                  "goal": f"≤ {IDLE_LATENCY_GROWTH:.2f}",
                  "met": None if value is None else value <= IDLE_LATENCY_GROWTH})
    return found


def target_lines(results: Mapping[str, Any]) -> list[str]:
    verdicts = {True: "met", False: "**not met**", None: "not measured"}
    return table(["target", "measured", "goal", "status"], [
        [t["target"], "–" if t["value"] is None else f"{t['value']:.2f}", t["goal"],
         verdicts[t["met"]]] for t in targets(results)])


def loadgen_lines(echo: list[Mapping[str, Any]]) -> list[str]:
    """Evidence that the load generator was not the bottleneck."""
    if not echo:
        return ["No echo cells were measured."]
    fastest = max(echo, key=lambda c: median(c["summary"], "rps") or 0)
    busiest = max(echo, key=lambda c: median(c["summary"], "client_cpu_max") or 0)
    cpu = median(busiest["summary"], "client_cpu_max") or 0
    waits = [median(c["summary"], "client_wait_max") for c in echo]
    wait = max((w for w in waits if w is not None), default=None)
    return [
        f"- The fastest server, {fastest['target']} ({human_size(fastest['size'])}, "
        f"c={fastest['concurrency']}), answered {number(median(fastest['summary'], 'rps'))} "
        "requests/s with the same load generator: every slower server was not held back by "
        "it.",
        f"- The busiest load-generator process used {cpu * 100:.0f}% of a core "
        f"({busiest['target']}, {human_size(busiest['size'])}, c={busiest['concurrency']}); "
        "a process under 100% of a core was waiting, not working.",
        f"- The longest a load-generator process waited for a CPU (run queue, "
        f"/proc/self/schedstat) was {number((wait or 0) * 100)}% of a window; the server's own "
        "wait is in the tables. Where both wait little and neither is near 100% of a core, "
        "the round trip through the network stack is the limit (concurrency 1).",
        "- The server and the load generator share this machine's cores (client and "
        "server containers run on the same host): the figures are those of the pair.",
    ]


def header_lines(results: Mapping[str, Any]) -> list[str]:
    m, p = results["machine"], results["params"]
    seen = results.get("load_average_seen") or {}
    versions = results.get("versions") or {}
    return [
        f"# socklab benchmark, {results['started']}" + (" (QUICK)" if p["quick"] else ""), "",
        f"- Machine: {m['cpus']} CPUs ({m['cpu_model']}), "
        f"{m['memory_bytes'] / (1 << 30):.1f} GiB, kernel {m['kernel']}, Docker {m['docker']}.",
        f"- Load average (1 min): {results['load_average_before'][0]:.2f} before, "
        f"{seen.get('min', 0):.2f}–{seen.get('max', 0):.2f} during, "
        f"{results.get('load_average_after', [0])[0]:.2f} after. The machine is shared.",
        f"- Image {results['image']}: Python {versions.get('python', '?')}, Twisted "
        f"{versions.get('twisted', '?')}, uvloop {versions.get('uvloop', '?')}, "
        f"{versions.get('iperf3', 'iperf3 ?')}.",
        f"- Every cell ran {p['runs']} times (ftp uploads and downloads {p['ftp_runs']}): "
        f"median (min–max). Echo runs: {p['warmup']} s warm-up, then {p['duration']} s "
        f"measured; up to {p['max_processes']} load-generator processes on client-1.",
        pinning_line(results.get("pinning")),
        f"- Whole run: {results.get('seconds', 0):.0f} s.",
    ]


def pinning_line(pinning: Mapping[str, Any] | None) -> str:
    if not pinning or not pinning.get("server"):
        return "- Servers and clients unpinned: they share every CPU."
    return (f"- Servers pinned to CPU {pinning['server']}, the clients (load generator, idle "
            f"connections) to CPU {pinning['client']}: a server's CPU figure is its own.")


def render(results: Mapping[str, Any], plots: list[str]) -> str:
    echo = results.get("echo") or []
    lines = header_lines(results)
    lines += ["", "## Headline: echo requests/s at 1 KiB", "", *headline(echo)]
    lines += [""] + [f"![{name}]({name})" for name in plots]
    lines += ["", "## Targets (reported, not asserted)", "", *target_lines(results)]
    lines += ["", "### The target ratios, measured in turns", "",
              *paired_table(results.get("paired") or [])]
    lines += ["", "## Is the load generator the bottleneck?", "", *loadgen_lines(echo)]
    lines += ["", "## Echo (tcp, select, epoll, twisted; references)", *echo_tables(echo)]
    lines += ["", "## Many idle connections: one active client's latency", ""]
    lines += idle_table(results.get("idle") or [])
    lines += ["", "## Memory per connection", "", *memory_table(results.get("memory") or [])]
    lines += ["", "## Bulk transfer", *bulk_tables(results)]
    lines += ["", "## exec: commands/s per framing (`echo ok`, one client)", ""]
    lines += exec_table(results.get("exec") or [])
    lines += ["", "## udp: datagrams answered and loss", "", *udp_table(results.get("udp") or [])]
    if results.get("errors"):
        lines += ["", "## Errors", ""] + [f"- {e['workload']}: {e['error']}"
                                          for e in results["errors"]]
    return "\n".join(lines) + "\n"
