"""Fuzzing every server from a client host: 1,000 malformed inputs each, the server unharmed.

Each test starts its own copy of one server and its own client host, runs
``socklab probe fuzz`` there (a health check by a correct client after every
100 inputs), then looks at the server's container: still running, never
restarted, and no traceback in its log. The per-server figures are printed
in the "socklab figures" summary at the end of the run and written to
``test-reports/fuzz/<target>.json``.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from integration.harness import ROOT, Host, TestLab
from socklab.probes.fuzz.targets import TARGETS
from socklab.registry import CLIENTS

# Found by this fuzzer, and fixed (protocol/jsonobj.py): json.loads raises
# RecursionError (arrays nested 1,000 deep) and a plain ValueError (an integer
# of more than 4,300 digits), not only JSONDecodeError; the connection's thread
# died with a traceback and no answer (seed 7: ftp inputs 500, 578, 620;
# exec-framed 63, 241, 975).
INPUTS = 1000
SEED = 7
PROBE_TIMEOUT = 240
REPORTS = ROOT / "test-reports" / "fuzz"


def container_state(host: Host) -> dict[str, Any]:
    """What a crash or a restart would change."""
    host.container.reload()
    state = host.container.attrs["State"]
    return {"status": state["Status"], "started_at": state["StartedAt"],
            "restarts": host.container.attrs["RestartCount"]}


def summary(report: dict[str, Any]) -> str:
    return (f"fuzz {report['target']:<14} inputs={report['inputs']} "
            f"dropped_by_server={report['dropped_by_server']} "
            f"failures={len(report['failures'])} server_errors={report['server_error_count']} "
            f"fuzzer_timeouts={report['fuzzer_timeouts']} seconds={report['seconds']:.1f}")


def save(target: str, report: dict[str, Any]) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{target}.json").write_text(json.dumps(report) + "\n")


@pytest.mark.parametrize("target", list(TARGETS))
def test_fuzz_server_survives_malformed_inputs(lab: TestLab, target: str,
                                               record_property: pytest.RecordProperty) -> None:
    with ThreadPoolExecutor(2) as pool:
        server_start = pool.submit(lab.start, TARGETS[target].host, alias=f"fuzz-{target}")
        client_start = pool.submit(lab.start, CLIENTS[0], alias=f"client-fuzz-{target}")
        hosts = [f.result() for f in (server_start, client_start)]
    server, client = hosts
    try:
        before = container_state(server)
        report = client.probe("fuzz", "--target", target, "--host", server.alias,
                              "--inputs", str(INPUTS), "--seed", str(SEED),
                              timeout=PROBE_TIMEOUT)
        after = container_state(server)
        save(target, report)
        record_property("figures", summary(report))
        assert (report["target"], report["port"]) == (target, TARGETS[target].port)
        assert report["inputs"] >= INPUTS
        assert report["failures"] == [], report["failures"]
        assert report["server_errors"] == [], report["server_errors"]
        assert before["status"] == "running" and before["restarts"] == 0
        assert after == before, server.logs()[-4000:]
        assert "Traceback" not in server.logs(), server.logs()[-4000:]
    finally:
        for host in hosts:
            lab.remove(host)
