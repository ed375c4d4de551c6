"""make grade-class's run (socklab.host.grade.class_run), with a stand-in grader.

The gradings are processes of ``fake_grader.py``, which writes what the real
grader writes; Docker is not needed. What is proven: every learner ends up in
class.csv and index.html, a rerun grades only what changed, a run stopped
midway (SIGINT) resumes and finishes, a hanging grading is stopped at its
limit without holding the others, the performance turns never overlap, and
bad input is refused (exit 2) before anything is graded.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from socklab.host.grade import class_run, classroom, weights
from socklab.host.grade.__main__ import parser
from socklab.host.grade.turns import Turns

FAKE = Path(__file__).parent / "fake_grader.py"


def fake_command(args: argparse.Namespace, entry: classroom.Entry, out: Path, class_id: str,
                 w: weights.Weights, worker: class_run.Worker = class_run.LOCAL) -> list[str]:
    real = class_run.grader_command(args, entry, out, class_id, w, worker)
    return [sys.executable, str(FAKE), *real[3:]]


def no_engine(args: argparse.Namespace, home: Path | None) -> tuple[str, list[class_run.Place]]:
    return "", [class_run.Place(class_run.LOCAL, 2)]


def make_class(root: Path, learners: dict[str, str]) -> Path:
    """SUBMISSIONS: one .py per learner, ``# fake: ...`` saying what its grading does."""
    root.mkdir(parents=True, exist_ok=True)
    for learner, fake in learners.items():
        (root / f"{learner}.py").write_text(f"# fake: {fake}\nprint('server')\n")
    return root


def args_for(submissions: Path, out: Path, *extra: str) -> argparse.Namespace:
    return parser().parse_args(["class", "--variant", "select", "--submissions",
                                str(submissions), "--out", str(out), "--image", "img:1",
                                *extra])


def run_class(submissions: Path, out: Path, *extra: str) -> tuple[int, list[str]]:
    said: list[str] = []
    status = class_run.main(args_for(submissions, out, *extra), said.append,
                            engine=no_engine, command=fake_command)
    return status, said


def rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "class.csv", newline="") as handle:
        return {row["learner"]: row for row in csv.DictReader(handle)}


def state(out: Path) -> dict[str, dict[str, object]]:
    return json.loads((out / "class-state.json").read_text())["learners"]


def test_every_learner_is_graded_and_listed(tmp_path: Path) -> None:
    subs = make_class(tmp_path / "subs", {
        "alice": "sleep=0.1", "Bob.Smith": "fail=conformance.echo",
        "carol_2": "crash=1", "dave-x": ""})
    (subs / "erin.txt").write_text("not a server")
    status, said = run_class(subs, tmp_path / "out", "--jobs", "2")
    assert status == 1
    found = rows(tmp_path / "out")
    assert set(found) == {"alice", "Bob.Smith", "carol_2", "dave-x", "erin.txt"}
    assert found["alice"]["status"] == "passed" and found["alice"]["percent"] == "100.0"
    assert found["Bob.Smith"]["status"] == "failed"
    assert float(found["Bob.Smith"]["conformance"]) < float(found["alice"]["conformance"])
    assert found["carol_2"]["status"] == "error"
    assert found["erin.txt"]["status"] == "unfit"
    page = (tmp_path / "out" / "index.html").read_text()
    for learner in found:
        assert learner in page
    assert (tmp_path / "out" / "alice" / "report.html").is_file()
    assert (tmp_path / "out" / "alice" / "grading.log").read_text().startswith("fake grader")
    progress = [line for line in said if line.startswith("[")]
    assert [line.split("]")[0] for line in progress] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert all(s["finished"] for s in state(tmp_path / "out").values())


def test_a_rerun_grades_only_what_changed(tmp_path: Path) -> None:
    subs = make_class(tmp_path / "subs", {"alice": "", "bob": "fail=conformance.echo"})
    out = tmp_path / "out"
    assert run_class(subs, out)[0] == 1
    first = (out / "alice" / "grade.json").stat().st_mtime_ns
    status, said = run_class(subs, out)
    assert status == 1 and not any(line.startswith("[") for line in said)
    assert any("keep 2 unchanged" in line for line in said)
    (subs / "bob.py").write_text("# fake: \nprint('fixed')\n")
    status, said = run_class(subs, out)
    assert status == 0
    assert [line for line in said if "grade bob" in line] == [
        "  grade bob: changed: its submission is not what was graded"]
    assert (out / "alice" / "grade.json").stat().st_mtime_ns == first
    assert rows(out)["bob"]["status"] == "passed"
    status, said = run_class(subs, out, "--force")
    assert sum(line.startswith("[") for line in said) == 2


def test_bad_input_is_refused_before_any_grading(tmp_path: Path) -> None:
    subs = make_class(tmp_path / "subs", {"alice": ""})
    (subs / "bad name.py").write_text("x")
    (subs / "ünïcode.py").write_text("x")
    status, said = run_class(subs, tmp_path / "out")
    assert status == 2 and "'bad name.py'" in said[0] and "'ünïcode.py'" in said[0]
    assert not (tmp_path / "out").exists()
    (subs / "bad name.py").unlink()
    (subs / "ünïcode.py").unlink()
    (tmp_path / "c.toml").write_text('[checks]\n"conformance.nope" = 3\n')
    status, said = run_class(subs, tmp_path / "out", "--checks", str(tmp_path / "c.toml"))
    assert status == 2 and "conformance.nope" in said[0]
    status, said = run_class(subs, tmp_path / "out", "--checks", str(tmp_path / "none.toml"))
    assert status == 2 and "cannot read it" in said[0]
    status, said = run_class(tmp_path / "missing", tmp_path / "out")
    assert status == 2 and "no such directory" in said[0]
    status = class_run.main(args_for(subs, tmp_path / "out"), said.append,
                            engine=lambda args, home: ("the Docker engine is not reachable", []),
                            command=fake_command)
    assert status == 2 and said[-1].endswith("not reachable")


def test_checks_weights_reach_every_grading(tmp_path: Path) -> None:
    subs = make_class(tmp_path / "subs", {"alice": "fail=conformance.echo", "bob": ""})
    (tmp_path / "c.toml").write_text('exclude = ["performance.*", "conformance.echo"]\n')
    status, _ = run_class(subs, tmp_path / "out", "--checks", str(tmp_path / "c.toml"))
    assert status == 0  # alice's one failure does not count under these weights
    grade = json.loads((tmp_path / "out" / "alice" / "grade.json").read_text())
    assert "conformance.echo" in grade["weights"]["excluded"]
    assert "measure" not in {kind for kind, _, _ in read_turns(tmp_path / "out")}
    assert state(tmp_path / "out")["bob"]["omitted"] == ["performance.throughput"]
    # The same results, rescored without the file: reports rewritten, alice fails again.
    status, said = run_class(subs, tmp_path / "out")
    assert status == 1
    assert any("checks: its last grading left out performance.throughput" in line
               for line in said)


def read_turns(out: Path) -> list[tuple[str, float, float]]:
    lines = (out / ".performance.lock.turns").read_text().splitlines()
    return sorted(((kind, float(a), float(b)) for kind, a, b in map(str.split, lines)),
                  key=lambda turn: turn[1])


def test_a_measurement_overlaps_nothing_and_checks_overlap_each_other(tmp_path: Path) -> None:
    subs = make_class(tmp_path / "subs", {f"l{i}": "measure=0.3 checks=0.2" for i in range(4)})
    assert run_class(subs, tmp_path / "out", "--jobs", "4")[0] == 0
    turns = read_turns(tmp_path / "out")
    measures = [t for t in turns if t[0] == "measure"]
    assert len(measures) == 4 and len(turns) == 4 * 4
    for kind, start, end in measures:
        others = [t for t in turns if t != (kind, start, end)]
        assert all(b <= start or a >= end for _, a, b in others), (start, end, others)
    checks = [t for t in turns if t[0] == "check"]
    assert any(a < d and c < b for i, (_, a, b) in enumerate(checks)
               for _, c, d in checks[i + 1:]), "checks of different gradings never overlapped"


def test_a_grading_past_its_limit_is_stopped_without_holding_the_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(class_run, "OVERRUN", 1.0)
    subs = make_class(tmp_path / "subs", {"alice": "", "bob": "hang=1", "carol": ""})
    began = time.monotonic()
    status, _said = run_class(subs, tmp_path / "out", "--jobs", "2", "--time-limit", "1")
    assert time.monotonic() - began < 20
    assert status == 1
    found = rows(tmp_path / "out")
    assert found["bob"]["status"] == "timeout"
    assert found["alice"]["status"] == found["carol"]["status"] == "passed"
    assert "past its time limit" in (tmp_path / "out" / "bob" / "grading.log").read_text()


def test_a_run_stopped_midway_resumes_and_finishes(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAKE_GRADER_RELEASE", raising=False)
    subs = make_class(tmp_path / "subs", {
        "a1": "", "a2": "", "b1": "hold=1", "b2": "hold=1", "c1": "", "c2": ""})
    out = tmp_path / "out"
    code = ("import sys; from socklab.host.grade import class_run; "
            "from test_grade_class_run import args_for, fake_command, no_engine; "
            "sys.exit(class_run.main(args_for(*map(__import__('pathlib').Path, sys.argv[1:3]),"
            " '--jobs', '2'), engine=no_engine, command=fake_command))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parent), *sys.path])}
    # Ctrl-C as a terminal gives it, even where this suite was started in the background
    # (an asynchronous command of a non-interactive shell inherits SIGINT ignored).
    process = subprocess.Popen([sys.executable, "-c", code, str(subs), str(out)], env=env,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Stop it once a1 and a2 are done and b1, b2 are running (they hold for 60 s).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        learners = state(out) if (out / "class-state.json").exists() else {}
        # ... and their graders are up (a TERM before that ends a process with no cleanup).
        logs = [out / learner / "grading.log" for learner in ("b1", "b2")]
        if ({"b1", "b2"} <= set(learners) and learners.get("a2", {}).get("finished")
                and all(log.exists() and "fake grader" in log.read_text() for log in logs)):
            break
        time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"the run never got to b1 and b2: {process.stderr.read()}")
    stopped = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert time.monotonic() - stopped < 10, stderr
    assert process.returncode == 1, stderr
    assert "stopped before the end" in stderr
    learners = state(out)
    assert learners["a1"]["finished"] and learners["a2"]["finished"]
    assert not learners["b1"]["finished"] and not learners["b2"]["finished"]
    assert "c1" not in learners
    found = rows(out)
    assert found["b1"]["status"] == found["c1"]["status"] == "pending"
    # No grading process is left: each fake grader exited on its TERM.
    assert "fake grader: stopped" in (out / "b1" / "grading.log").read_text()
    # Resumed: b1, b2 (unfinished) and c1, c2 (new) only.
    monkeypatch.setenv("FAKE_GRADER_RELEASE", "1")
    status, said = run_class(subs, out, "--jobs", "2")
    graded = {line.split()[1].rstrip(":"): line.split(": ", 1)[1]
              for line in said if line.startswith("  grade ")}
    assert graded == {"b1": classroom.UNFINISHED, "b2": classroom.UNFINISHED,
                      "c1": classroom.NEW, "c2": classroom.NEW}
    assert status == 0
    assert all(row["status"] == "passed" for row in rows(out).values())


def test_a_measurement_waits_for_running_checks_and_later_ones_wait_for_it(
        tmp_path: Path) -> None:
    turns, events = Turns(tmp_path / "lock"), []
    guard = threading.Lock()

    def log(what: str) -> None:
        with guard:
            events.append(what)

    def check(name: str, delay: float) -> None:
        time.sleep(delay)
        with turns.check():
            log(f"{name} in")
            time.sleep(0.3)
            log(f"{name} out")

    def measure() -> None:
        time.sleep(0.1)
        with turns.measurement():
            log("measure in")
            time.sleep(0.3)
            log("measure out")

    threads = [threading.Thread(target=check, args=("early", 0.0)),
               threading.Thread(target=measure),
               threading.Thread(target=check, args=("late", 0.2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert events == ["early in", "early out", "measure in", "measure out", "late in",
                      "late out"]
    with Turns(None).check(), Turns(None).measurement():
        pass  # a grading alone never waits


@pytest.mark.parametrize(("cpus", "in_use", "jobs"), [
    (2, 0, 2), (2, 27, 1), (None, 0, 1), (8, 10, 8), (8, 25, 3), (2, 40, 1)])
def test_default_jobs_fit_the_cores_and_the_networks_left(cpus: int | None, in_use: int,
                                                          jobs: int) -> None:
    assert class_run.default_jobs(cpus, in_use) == jobs


def test_the_time_left_is_estimated_from_the_gradings_done() -> None:
    assert class_run.eta_text([], 5, 2) == ""
    assert class_run.eta_text([60.0, 60.0], 4, 2) == "~2 min left"
    assert class_run.eta_text([30.0], 1, 2) == "~30 s left"
    assert class_run.eta_text([30.0], 0, 2) == ""


def test_the_grader_command_carries_the_class_labels_and_choices(tmp_path: Path) -> None:
    subs = make_class(tmp_path / "subs", {"alice": ""})
    (tmp_path / "c.toml").write_text('exclude = ["performance.*"]\n')
    args = args_for(subs, tmp_path / "out", "--checks", str(tmp_path / "c.toml"),
                    "--label", "owner=test", "--time-limit", "120")
    entry = classroom.discover(subs)[0]
    command = class_run.grader_command(args, entry, tmp_path / "out", "RUN1",
                                       weights.load(args.checks, "select"))
    assert command[1:4] == ["-m", "socklab.host.grade", "run"]
    assert f"{class_run.CLASS_LABEL}=RUN1" in command and "--label=owner=test" in command
    assert "--no-performance" in command
    assert command[command.index("--out") + 1] == str(tmp_path / "out" / "alice")
    assert command[command.index("--time-limit") + 1] == "120.0"


def test_fairness_grades_the_reference_in_each_learners_place(tmp_path: Path) -> None:
    from socklab.host.grade import fairness

    subs = make_class(tmp_path / "subs", {"reference-01": ""})
    args = args_for(subs, tmp_path / "out")
    entry = classroom.discover(subs)[0]
    command = fairness.reference_command(args, entry, tmp_path / "out", "RUN1",
                                         weights.default("select"))
    assert command[command.index("--submission") + 1] == "reference"
    assert "--no-performance" not in command
    assert fairness.spread([1.0, 0.95, 1.1]) == (1.0, pytest.approx(0.1))


def test_fairness_runs_the_class_with_every_option_make_grade_class_has(tmp_path: Path) -> None:
    from socklab.host.grade import fairness

    args = fairness.class_args("epoll", str(tmp_path), tmp_path / "out", 2)
    assert (args.variant, args.jobs, args.force, args.swarm) == ("epoll", 2, True, None)
    assert vars(args).keys() == vars(args_for(tmp_path, tmp_path / "out")).keys()


VM_A = class_run.Worker("vm-a", "ssh://labadmin@10.0.0.2", 2)
VM_B = class_run.Worker("vm-b", "ssh://labadmin@10.0.0.3", 2)


def test_jobs_are_shared_among_the_workers_in_turn() -> None:
    places = [class_run.Place(VM_A, 2), class_run.Place(VM_B, 2)]
    assert class_run.spread(places, None) == places
    assert class_run.spread(places, 3) == [class_run.Place(VM_A, 2), class_run.Place(VM_B, 1)]
    assert class_run.spread(places, 1) == [class_run.Place(VM_A, 1)]


def test_a_swarm_grading_goes_to_its_worker_with_that_worker_s_lock(tmp_path: Path) -> None:
    subs = make_class(tmp_path / "subs", {"alice": ""})
    args = args_for(subs, tmp_path / "out", "--ssh-config", "vms.conf")
    entry = classroom.discover(subs)[0]
    w = weights.load(None, "select")
    remote = class_run.grader_command(args, entry, tmp_path / "out", "RUN1", w, VM_A)
    local = class_run.grader_command(args, entry, tmp_path / "out", "RUN1", w)
    assert remote[remote.index("--engine") + 1] == VM_A.url
    assert "--engine" not in local
    assert remote[remote.index("--ssh-config") + 1] == str(Path("vms.conf").resolve())
    locks = {c[c.index("--performance-lock") + 1] for c in (remote, local)}
    assert len(locks) == 2 and all(lock.startswith(str(tmp_path / "out")) for lock in locks)


def test_a_class_on_two_workers_uses_both_and_each_at_most_its_slots(tmp_path: Path) -> None:
    subs = make_class(tmp_path / "subs", {f"l{n}": "sleep=0.5" for n in range(6)})
    seen: list[str] = []
    most: dict[str, int] = {}

    def engines(args: argparse.Namespace, home: Path | None) -> tuple[str, list[class_run.Place]]:
        return "", [class_run.Place(VM_A, 2), class_run.Place(VM_B, 1)]

    def command(args: argparse.Namespace, entry: classroom.Entry, out: Path, class_id: str,
                w: weights.Weights, worker: class_run.Worker = class_run.LOCAL) -> list[str]:
        seen.append(worker.name)
        return fake_command(args, entry, out, class_id, w, worker)

    original = class_run.ClassRun.take_worker

    def counting(self: class_run.ClassRun) -> class_run.Worker:
        worker = original(self)
        most[worker.name] = max(most.get(worker.name, 0), self.busy[worker.name])
        return worker

    said: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(class_run.ClassRun, "take_worker", counting)
        patch.setattr(class_run, "sweep_worker", lambda *a: 0)  # no engine: no address
        status = class_run.main(args_for(subs, tmp_path / "out", "--swarm", "ssh://m"),
                                said.append, engine=engines, command=command)
    assert status == 0
    assert sorted(set(seen)) == ["vm-a", "vm-b"] and len(seen) == 6
    assert most["vm-a"] <= 2 and most["vm-b"] <= 1
    assert any(line.startswith("[6/6]") and " on vm-" in line for line in said)
    assert "on vm-a (2), vm-b (1)" in " ".join(said)
