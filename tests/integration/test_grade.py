"""make grade, end to end: the lab's own servers score full marks, and a server that
tries to reach out of its lab finds no route.

Each test runs the grader's command (``python -m socklab.host.grade run``) as a learner's
``make grade`` does, with the test run's label on everything it creates, and reads the
``grade.json`` it writes. The corpus of learners' servers (``tests/grading/corpus``) is
graded by ``test_grade_corpus.py`` with the same helpers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import pytest

from integration import harness
from socklab.grading import spec

pytestmark = pytest.mark.integration

def grade(image: str, variant: str, submission: str | Path, out: Path,
          *extra: str, timeout: float = 600) -> tuple[int, dict[str, Any], str]:
    """Run the grader's command; (exit status, grade.json, its stderr)."""
    env = {**os.environ, "PYTHONPATH": str(harness.ROOT / "services")}
    result = subprocess.run(
        [sys.executable, "-m", "socklab.host.grade", "run", "--variant", variant,
         "--submission", str(submission), "--out", str(out), "--image", image,
         "--label", f"{harness.RUN_LABEL}={os.environ['SOCKLAB_TEST_RUN']}", *extra],
        capture_output=True, text=True, timeout=timeout, env=env, check=False)
    found = json.loads((out / "grade.json").read_text()) if (out / "grade.json").exists() else {}
    return result.returncode, found, result.stderr


def failed(found: dict[str, Any]) -> set[str]:
    return {c["id"] for c in found["checks"] if c["scored"] and c["status"] != "passed"}


def explain(found: dict[str, Any]) -> str:
    return "\n".join(f"  {c['id']}: {c['status']}: {c['message'][:400]}"
                     for c in found.get("checks", []) if c["status"] != "passed")


def leftovers(client: docker.DockerClient, run_id: str) -> list[str]:
    label = {"label": f"socklab.grade={run_id}"}
    return ([c.name for c in client.containers.list(all=True, filters=label)] +
            [n.name for n in client.networks.list(filters=label)])


@pytest.mark.parametrize("variant", spec.GRADED)
def test_the_labs_own_server_scores_full_marks(lab_image: str, variant: str,
                                               tmp_path: Path,
                                               docker_client: docker.DockerClient) -> None:
    status, found, stderr = grade(lab_image, variant, "reference", tmp_path)
    assert found, f"no grade.json:\n{stderr}"
    assert failed(found) == set(), explain(found)
    assert status == 0 and found["passed"]
    perf = found["performance"]
    assert perf and perf["submission"] > 0 and perf["reference"] > 0, found["performance"]
    for name in ("report.md", "report.html", "junit.xml", "gradescope/results.json",
                 "prairielearn/results.json", "server.log"):
        assert (tmp_path / name).exists(), name
    assert leftovers(docker_client, found["lab"]["run_id"]) == []



# A learner's server that first tries to reach this machine (docker0's address, and the
# gateway its own network names), logs what happened, then serves correctly. Only
# addresses of this machine are aimed at.
REACH_OUT = r"""
import socket
with open("/proc/net/route") as routes:
    gateway = next(socket.inet_ntoa(bytes.fromhex(f[2])[::-1]) for f in
                   (line.split() for line in routes.readlines()[1:]) if f[1] == "00000000")
for address in ("172.17.0.1", gateway):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect((address, 22))
        print("reach", address, "CONNECTED", flush=True)
    except OSError as error:
        print("reach", address, type(error).__name__, error.errno, flush=True)
    s.close()
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("", 9000))
server.listen(8)
while True:
    conn, _ = server.accept()
    try:
        while data := conn.recv(65536):
            conn.sendall(data.upper())
    except OSError:
        pass
    conn.close()
"""


def test_a_server_that_reaches_out_finds_no_route(lab_image: str, tmp_path: Path) -> None:
    source = tmp_path / "reach.py"
    source.write_text(REACH_OUT)
    status, found, stderr = grade(lab_image, "tcp", source, tmp_path / "out",
                                  "--no-performance")
    assert found, f"no grade.json:\n{stderr}"
    log = (tmp_path / "out" / "server.log").read_text()
    lines = [line for line in log.splitlines() if line.startswith("reach ")]
    assert len(lines) == 2, log
    assert "CONNECTED" not in log
    # EHOSTUNREACH (113) or ENETUNREACH (101): no route, decided inside the container.
    assert all(line.split()[-1] in ("113", "101") for line in lines), lines
    # And the server itself is graded as usual.
    assert failed(found) == set(), explain(found)
    assert status == 0


def test_during_the_performance_check_each_name_answers_for_one_server(
        lab_image: str, docker_client: docker.DockerClient) -> None:
    """The variant's host name reaches the learner's server only, never the reference
    started beside it: the engine answers a container's host name as a DNS alias too,
    and a reference with the variant's host name took part of the learner's load."""
    from socklab.host.grade.lab import REFERENCE_ALIAS, GradeLab
    from socklab.host.grade.submission import stage
    from socklab.registry import VARIANTS

    variant = VARIANTS["select"]
    run = os.environ["SOCKLAB_TEST_RUN"]
    with GradeLab(docker_client, lab_image, f"{run}-names", variant, stage("reference"),
                  {harness.RUN_LABEL: run}) as lab:
        lab.start_client()
        lab.start_server()
        lab.start_reference()

        def address(container: Any) -> str:
            container.reload()
            return str(next(iter(container.attrs["NetworkSettings"]["Networks"].values()))[
                "IPAddress"])

        for name, container in ((variant.host, lab.server), (REFERENCE_ALIAS, lab.reference)):
            answer = lab.client_run(["getent", "ahostsv4", name], timeout=20).stdout
            assert {line.split()[0] for line in answer.splitlines()} == {address(container)}, (
                name, answer)


# A correct select-server that rests 2 ms after each reply: at most 500 replies a second,
# whatever the machine; the lab's own server answers tens of thousands.
RESTING = r"""
import select, socket, time
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("", 9000))
listener.listen(128)
clients, pending = [], {}
while True:
    writable = [c for c in clients if pending[c]]
    readable, ready, _ = select.select([listener, *clients], writable, [])
    for sock in readable:
        if sock is listener:
            conn, _ = listener.accept()
            clients.append(conn)
            pending[conn] = b"hello"
            continue
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            clients.remove(sock)
            del pending[sock]
            sock.close()
            continue
        pending[sock] += data.upper()
    for sock in ready:
        if sock in pending:
            try:
                sent = sock.send(pending[sock])
            except OSError:
                sent = len(pending[sock])
            pending[sock] = pending[sock][sent:]
            time.sleep(0.002)
"""


def test_a_slow_server_is_measured_slow_beside_the_reference(lab_image: str,
                                                             tmp_path: Path) -> None:
    """The two servers share one run of the load generator, taking turns: the slow one's
    rate is its own, capped by its rests, and the reference's is far above it."""
    source = tmp_path / "resting.py"
    source.write_text(RESTING)
    checks = tmp_path / "checks.toml"
    checks.write_text('only = ["performance.*"]\n')
    _, found, stderr = grade(lab_image, "select", source, tmp_path / "out",
                             "--checks", str(checks))
    assert found, f"no grade.json:\n{stderr}"
    perf = found["performance"]
    assert perf and perf["method"] == "turns", perf
    # 10 clients, a 1 KiB request in one or two segments, a 2 ms rest per send
    assert 0 < perf["submission"] <= 500, perf
    assert perf["reference"] > 10 * perf["submission"], perf
    check = next(c for c in found["checks"] if c["id"] == "performance.throughput")
    assert check["points"] == 0 and check["status"] == "passed", check
