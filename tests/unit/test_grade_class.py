"""make grade-class's pure parts: learners, the state file, the plan, class.csv, index.html."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from socklab.grading import spec
from socklab.host.grade import class_page, classroom, weights
from socklab.host.grade.classroom import (
    ClassError,
    ClassState,
    Entry,
    LearnerId,
    LearnerResult,
    LearnerState,
    StateError,
)
from socklab.host.grade.submission import content_hash

HOSTILE = "<script>alert(1)</script>"


def spec_grade(variant: str = "select", failing: dict[str, str] | None = None, *,
               sha256: str = "ab" * 32, ratio: float | None = None,
               title: str | None = None, hint: str | None = None) -> dict[str, Any]:
    """A grade as the grader writes it: every check of the spec, passed unless ``failing``."""
    failing = failing or {}
    checks = []
    for check in spec.checks(variant):
        status = failing.get(check.id, "passed")
        earned = float(check.points) if status == "passed" else 0.0
        if check.category == "performance" and ratio is not None and status == "passed":
            earned = check.points * spec.performance_share(ratio)
        checks.append({"id": check.id, "category": check.category,
                       "title": title or check.title, "points": earned,
                       "max_points": check.points, "status": status,
                       "scored": check.category != "performance", "message": status,
                       "hint": hint or check.hint, "page": spec.PAGES[check.page],
                       "reproduce": "", "seconds": 1.0, "details": {}})
    scored = [c for c in checks if c["scored"]]
    return {"schema": 1, "variant": variant,
            "submission": {"path": "s.py", "name": "s", "kind": "python", "sha256": sha256},
            "score": round(sum(c["points"] for c in checks), 2),
            "max_score": sum(c["max_points"] for c in checks),
            "passed": all(c["status"] == "passed" for c in scored), "gradable": True,
            "checks": checks, "server": {},
            "performance": None if ratio is None else {
                "ratio": ratio, "submission": 1000.0 * ratio, "reference": 1000.0,
                "unit": "requests/s"},
            "timings": {"seconds": 61.5}, "versions": {}, "lab": {}}


def entry(learner: str, sha256: str = "ab" * 32, problem: str = "") -> Entry:
    return Entry(LearnerId(learner), Path("subs") / f"{learner}.py",
                 "" if problem else "python", "" if problem else sha256, problem)


def graded(learner: str, grade: dict[str, Any] | None = None, *, status: str = "passed",
           w: weights.Weights | None = None, **state: Any) -> LearnerResult:
    """The result of a learner whose grading finished with ``grade``."""
    grade = grade if grade is not None else spec_grade(sha256=f"{learner}-sha")
    last = LearnerState(grade["submission"]["sha256"], True, status, 70.0, **state)
    return classroom.learner_result(entry(learner, grade["submission"]["sha256"]), grade, last,
                                    w or weights.default(grade["variant"]))


# -- learner ids ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["alice", "Alice.Smith_2-x", "42", "a", "x" * 100,
                                  "jean-luc.picard_1701", "A..B", "a-"])
def test_ids_as_lms_exports_write_them_are_accepted(name: str) -> None:
    assert classroom.id_problem(name) is None
    assert str(LearnerId(name)) == name


@pytest.mark.parametrize("name, why", [
    ("../x", "starts with"), ("a b", "holds ' '"), ("é", "starts with"),
    ("ané", "holds 'é'"), ("", "empty"), ("x" * 101, "101 characters long"),
    ("x" * 200, "200 characters long"), (".", "starts with"), ("..", "starts with"),
    (".hidden", "starts with"), ("-rf", "starts with"), ("_x", "starts with"),
    ("a/b", "holds '/'"), ("a\x00b", "holds '\\x00'"), ("a\nb", "holds '\\n'"),
    ("a:b", "holds ':'"), ("=1+1", "starts with"), ("a,b", "holds ','"),
    (HOSTILE, "starts with"), ("x<script>", "holds '<', '>'"),
    ("class.csv", "OUT's own files"), ("INDEX.html", "OUT's own files"),
    ("class-state.json", "OUT's own files"),
])
def test_hostile_ids_are_refused_with_the_reason(name: str, why: str) -> None:
    problem = classroom.id_problem(name)
    assert problem is not None and why in problem
    with pytest.raises(ClassError, match="is no learner id"):
        LearnerId(name)


@pytest.mark.parametrize("name", ["alice", "Alice", "ALICE", "a.b_c", "A.B-C", "9", "x" * 100,
                                  "a" + "." * 60 + "b", "Z_" * 40])
def test_a_lab_name_is_a_lower_case_docker_name_and_dns_label(name: str) -> None:
    lab = classroom.lab_name(name)
    assert classroom.LAB_NAME_PATTERN.fullmatch(lab), lab
    assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", lab)  # what Docker takes for a name
    assert len(lab) <= classroom.LAB_NAME_LENGTH <= 63
    assert lab == classroom.lab_name(name)  # the same on every run
    assert LearnerId(name).lab == lab


def test_ids_that_differ_only_in_case_get_different_lab_names() -> None:
    labs = {classroom.lab_name(n) for n in ("alice", "Alice", "ALICE", "aLiCe")}
    assert len(labs) == 4
    assert all(lab.startswith("alice-") for lab in labs)
    assert classroom.lab_name("Alice.B") .startswith("alice-b-")
    assert classroom.lab_name("a.b") != classroom.lab_name("a_b") != classroom.lab_name("a-b")


# -- discover ---------------------------------------------------------------------------------

def make_class(root: Path, names: dict[str, str]) -> Path:
    """A SUBMISSIONS directory: name -> "py", "dir", "exe", "txt"."""
    root.mkdir(parents=True, exist_ok=True)
    for name, kind in names.items():
        path = root / name
        if kind == "dir":
            path.mkdir()
            (path / "main.py").write_text(f"print({name!r})\n")
        elif kind == "exe":
            path.write_text("#!/bin/sh\necho hi\n")
            path.chmod(0o755)
        else:
            path.write_text(f"print({name!r})\n")
    return root


def test_discover_finds_every_learner_with_kind_and_hash(tmp_path: Path) -> None:
    root = make_class(tmp_path / "subs", {"alice.py": "py", "Bob": "dir", "carol": "exe",
                                          "dave.tar.py": "py", ".DS_Store": "txt",
                                          ".git": "dir", "erin.py": "dir", "a-b": "dir",
                                          "a.py": "py"})
    found = classroom.discover(root)
    # By id: "a" before "a-b" (by entry name, "a-b" would come before "a.py").
    assert [e.id for e in found] == ["Bob", "a", "a-b", "alice", "carol", "dave.tar", "erin.py"]
    kinds = {e.id: e.kind for e in found}
    assert kinds == {"alice": "python", "Bob": "directory", "carol": "executable",
                     "dave.tar": "python", "erin.py": "directory", "a-b": "directory",
                     "a": "python"}
    for found_entry in found:
        assert found_entry.sha256 == content_hash(found_entry.path)
        assert found_entry.problem == ""
    assert found[3].path == root / "alice.py" and found[6].path == root / "erin.py"


def test_discover_refuses_every_bad_name_at_once(tmp_path: Path) -> None:
    root = make_class(tmp_path / "subs", {"alice.py": "py", "a b.py": "py", "é.py": "py",
                                          "x" * 200: "py", "-rf": "exe", "index.html": "txt"})
    with pytest.raises(ClassError) as error:
        classroom.discover(root)
    message = str(error.value)
    assert "5 names cannot be a learner's" in message
    for bad in ("'a b.py'", "'é.py'", "'" + "x" * 200 + "'", "'-rf'", "'index.html'"):
        assert bad in message
    assert "'alice.py'" not in message


def test_discover_refuses_two_entries_of_one_learner(tmp_path: Path) -> None:
    root = make_class(tmp_path / "subs", {"alice.py": "py", "alice": "dir", "bob.py": "py"})
    with pytest.raises(ClassError, match=r"'alice', 'alice\.py': the same learner 'alice' "
                                         "twice"):
        classroom.discover(root)


def test_discover_keeps_ids_that_differ_only_in_case_apart(tmp_path: Path) -> None:
    root = make_class(tmp_path / "subs", {"alice.py": "py", "Alice.py": "py"})
    found = classroom.discover(root)
    assert [e.id for e in found] == ["Alice", "alice"]
    assert found[0].learner.lab != found[1].learner.lab


def test_discover_refuses_ids_that_would_share_a_lab(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(classroom, "lab_name", lambda learner: "same-00000000")
    root = make_class(tmp_path / "subs", {"alice.py": "py", "Alice.py": "py"})
    with pytest.raises(ClassError, match="the same lab name 'same-00000000'"):
        classroom.discover(root)


def test_an_entry_make_grade_would_refuse_is_unfit_not_an_error(tmp_path: Path) -> None:
    root = make_class(tmp_path / "subs", {"alice.py": "py", "notes.txt": "txt",
                                          "emptydir": "py"})
    (root / "emptydir").unlink()
    (root / "emptydir").mkdir()
    (root / "dangling.py").symlink_to(root / "nowhere")
    found = {e.id: e for e in classroom.discover(root)}
    assert found["alice"].problem == ""
    assert "neither a Python file" in found["notes.txt"].problem
    assert "without main.py" in found["emptydir"].problem
    assert "no such file" in found["dangling"].problem
    assert found["notes.txt"].kind == found["notes.txt"].sha256 == ""


def test_an_unreadable_entry_is_unfit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(path: Path) -> str:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(classroom, "content_hash", denied)
    root = make_class(tmp_path / "subs", {"alice": "dir"})
    found = classroom.discover(root)
    assert found[0].problem == f"cannot read {root / 'alice'}: Permission denied"
    assert found[0].sha256 == ""


def test_discover_says_when_it_cannot_list_the_directory(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(self: Path) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", denied)
    with pytest.raises(ClassError, match="cannot list it: Permission denied"):
        classroom.discover(tmp_path)


def test_discover_says_what_is_wrong_with_the_directory(tmp_path: Path) -> None:
    with pytest.raises(ClassError, match="no such directory"):
        classroom.discover(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ClassError, match="is not a directory"):
        classroom.discover(tmp_path / "file")
    make_class(tmp_path / "hidden-only", {".DS_Store": "txt"})
    with pytest.raises(ClassError, match="holds no submission"):
        classroom.discover(tmp_path / "hidden-only")


def test_the_default_out_is_stable_per_variant_and_class() -> None:
    assert classroom.default_out("select", "classes/net-2026/") == Path(
        "results/class-select-net-2026")
    assert classroom.default_out("udp", "/x/My Class (B)") == Path("results/class-udp-My-Class-B")
    assert classroom.default_out("udp", "/x/..") == classroom.default_out("udp", "/")
    assert classroom.default_out("udp", "/") == Path("results/class-udp-submissions")


# -- the state file ---------------------------------------------------------------------------

def test_the_state_file_round_trips_and_says_what_it_holds(tmp_path: Path) -> None:
    state = classroom.started(ClassState(), "select", entry("alice", "a1"))
    state = classroom.finished(state, "alice", "passed", 61.66)
    state = classroom.started(state, "select", entry("Bob", "b1"),
                              omitted=["performance.throughput"])
    path = classroom.write_state(tmp_path / "out", state)
    assert path == tmp_path / "out" / "class-state.json"
    assert not list((tmp_path / "out").glob("*.tmp"))
    data = json.loads(path.read_text())
    assert data == {"schema": 1, "variant": "select", "learners": {
        "Bob": {"sha256": "b1", "finished": False, "status": "", "seconds": None,
                "omitted": ["performance.throughput"]},
        "alice": {"sha256": "a1", "finished": True, "status": "passed", "seconds": 61.7,
                  "omitted": []}}}
    again = classroom.read_state(tmp_path / "out")
    assert again.variant == "select" and dict(again.learners) == dict(state.learners)
    assert again.results == frozenset()


def test_reading_the_state_finds_which_results_are_on_disk(tmp_path: Path) -> None:
    state = ClassState("select", {name: LearnerState("s", True, "passed", 1.0)
                                  for name in ("alice", "bob", "../evil", "carol")})
    out = tmp_path / "out"
    classroom.write_state(out, state)
    for name in ("alice", "carol"):
        (out / name).mkdir(parents=True)
    (out / "alice" / "grade.json").write_text("{}")
    (out / "carol" / "report.md").write_text("")
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "grade.json").write_text("{}")
    assert classroom.read_state(out).results == frozenset({"alice"})


def test_no_state_file_is_an_empty_state(tmp_path: Path) -> None:
    assert classroom.read_state(tmp_path) == ClassState()


@pytest.mark.parametrize("text, why", [
    ("{", "not JSON"), ("[]", '"schema": 1'), ('{"schema": 2}', '"schema": 1'),
    ('{"schema": 1, "variant": "select"}', "no variant or no learners"),
    ('{"schema": 1, "variant": "select", "learners": {"a": {"sha256": "x"}}}', "learner 'a'"),
    ('{"schema": 1, "variant": "select", "learners": {"a": {"sha256": "x", "finished": 1,'
     ' "status": "", "seconds": null}}}', "learner 'a'"),
    ('{"schema": 1, "variant": "select", "learners": {"a": {"sha256": "x", "finished": true,'
     ' "status": "great", "seconds": null}}}', "learner 'a'"),
    ('{"schema": 1, "variant": "select", "learners": {"a": {"sha256": "x", "finished": true,'
     ' "status": "passed", "seconds": "1"}}}', "learner 'a'"),
    ('{"schema": 1, "variant": "select", "learners": {"a": "x"}}', "learner 'a'"),
])
def test_a_damaged_state_file_says_how_to_go_on(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "class-state.json").write_text(text)
    with pytest.raises(StateError) as error:
        classroom.read_state(tmp_path)
    assert why in str(error.value)
    assert "remove it, or grade the whole class again with FORCE=1" in str(error.value)
    assert str(tmp_path / "class-state.json") in str(error.value)


def test_an_undecodable_state_file_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "class-state.json").write_bytes(b"\xff\xfe")
    with pytest.raises(StateError, match="cannot read it"):
        classroom.read_state(tmp_path)


def test_starting_a_grading_of_another_variant_drops_the_old_class() -> None:
    state = classroom.started(ClassState(), "udp", entry("alice", "a1"))
    state = classroom.finished(state, "alice", "failed", 5.0)
    state = ClassState(state.variant, state.learners, frozenset({"alice"}))
    state = classroom.started(state, "select", entry("bob", "b1"))
    assert state.variant == "select" and list(state.learners) == ["bob"]
    assert state.results == frozenset()


def test_finishing_records_the_ending_and_what_was_graded() -> None:
    state = classroom.started(ClassState(), "select", entry("alice", "a1"))
    done = classroom.finished(state, "alice", "error", 3.04, sha256="a2")
    assert done.learners["alice"] == LearnerState("a2", True, "error", 3.0)
    assert state.learners["alice"].finished is False  # the state given is left as it was
    with pytest.raises(ValueError, match="status 'great'"):
        classroom.finished(state, "alice", "great", 1.0)
    with pytest.raises(ClassError, match="never started"):
        classroom.finished(state, "bob", "passed", 1.0)


# -- the plan ---------------------------------------------------------------------------------

def finished_state(**learners: LearnerState) -> ClassState:
    return ClassState("select", learners, frozenset(learners))


def reasons(result: classroom.Plan) -> dict[str, str]:
    return {d.entry.id: d.reason for d in (*result.grade, *result.keep, *result.unfit)}


def test_a_first_run_grades_everyone_fit() -> None:
    entries = [entry("alice"), entry("bob"), entry("carol", problem="notes.txt is neither…")]
    result = classroom.plan(entries, ClassState(), variant="select")
    assert [d.entry.id for d in result.grade] == ["alice", "bob"]
    assert {d.reason for d in result.grade} == {classroom.NEW}
    assert [d.entry.id for d in result.unfit] == ["carol"]
    assert result.unfit[0].reason == "notes.txt is neither…"
    assert result.keep == () and result.gone == ()


def test_a_rerun_grades_only_what_changed_or_has_no_result() -> None:
    state = finished_state(
        same=LearnerState("s", True, "passed", 60.0),
        changed=LearnerState("old", True, "passed", 60.0),
        unfinished=LearnerState("s", False, "", None),
        broke=LearnerState("s", True, "error", 2.0),
        slow=LearnerState("s", True, "timeout", 900.0),
        failed=LearnerState("s", True, "failed", 60.0),
        deleted=LearnerState("s", True, "passed", 60.0),
        left=LearnerState("s", True, "passed", 60.0))
    state = ClassState("select", state.learners, state.results - {"deleted"})
    names = ["same", "changed", "unfinished", "broke", "slow", "failed", "deleted", "newcomer"]
    result = classroom.plan([entry(n, "s") for n in names], state, variant="select")
    why = reasons(result)
    assert [d.entry.id for d in result.keep] == ["same", "failed"]
    assert why["same"] == why["failed"] == classroom.UNCHANGED
    assert why["changed"].startswith("changed")
    assert why["unfinished"].startswith("unfinished")
    assert why["broke"] == "retried: its last grading ended in error"
    assert why["slow"] == "retried: its last grading ended in timeout"
    assert why["deleted"] == "no result: deleted/grade.json is missing"
    assert why["newcomer"] == classroom.NEW
    assert result.gone == ("left",)


def test_force_regrades_everyone_but_the_unfit() -> None:
    state = finished_state(alice=LearnerState("s", True, "passed", 1.0))
    entries = [entry("alice", "s"), entry("bob", problem="too large")]
    result = classroom.plan(entries, state, True, variant="select")
    assert [(d.entry.id, d.reason) for d in result.grade] == [("alice", classroom.FORCED)]
    assert [d.entry.id for d in result.unfit] == ["bob"] and result.keep == ()
    assert reasons(classroom.plan(entries, state, False, variant="select"))["alice"] == (
        classroom.UNCHANGED)


def test_a_state_of_another_variant_regrades_everyone() -> None:
    state = ClassState("udp", {"alice": LearnerState("s", True, "passed", 1.0)},
                       frozenset({"alice"}))
    result = classroom.plan([entry("alice", "s")], state, variant="select")
    assert reasons(result)["alice"] == "another variant: OUT held udp's results"


def test_a_check_left_out_last_time_that_now_counts_regrades() -> None:
    left_out = LearnerState("s", True, "passed", 1.0, ("performance.throughput",))
    state = finished_state(alice=left_out)
    counted_now = weights.default("select").counted
    result = classroom.plan([entry("alice", "s")], state, variant="select", counted=counted_now)
    assert reasons(result)["alice"] == ("checks: its last grading left out "
                                        "performance.throughput, which now count")
    off = weights.parse('exclude = ["performance.throughput"]', "select")
    assert off.left_out == ("performance.throughput",) and counted_now
    result = classroom.plan([entry("alice", "s")], state, variant="select", counted=off.counted)
    assert reasons(result)["alice"] == classroom.UNCHANGED


# -- results ----------------------------------------------------------------------------------

@pytest.mark.parametrize("exit_code, grade, timed_out, status", [
    (0, {"passed": True, "gradable": True}, False, "passed"),
    (1, {"passed": False, "gradable": True}, False, "failed"),
    (2, {"passed": True, "gradable": True}, False, "error"),
    (1, {"passed": False, "gradable": False}, False, "error"),
    (1, None, False, "error"),  # no grade.json, whatever the exit status
    (None, None, False, "error"),
    (None, None, True, "timeout"),
    (0, {"passed": True, "gradable": True}, True, "timeout"),
])
def test_how_a_grading_ended(exit_code: int | None, grade: dict[str, Any] | None,
                             timed_out: bool, status: str) -> None:
    assert classroom.run_status(exit_code, grade, timed_out=timed_out) == status


def test_category_points_sum_what_each_category_earned() -> None:
    grade = spec_grade("select", {"conformance.sizes": "failed", "robustness.fuzz": "timeout"},
                       ratio=0.6)
    assert classroom.category_points(grade) == {
        "conformance": 40 - 8, "concurrency": 35, "robustness": 20 - 5, "resources": 13,
        "security": 0, "performance": 3.0}
    assert classroom.category_max(grade)["conformance"] == 40
    assert classroom.category_max(grade)["security"] == 0
    assert classroom.category_points(spec_grade("exec"))["security"] == 20


def test_a_result_is_rescored_under_the_weights() -> None:
    w = weights.parse('exclude = ["concurrency.fd-wall"]', "select")
    grade = spec_grade("select", {"concurrency.fd-wall": "failed"}, sha256="s")
    result = classroom.learner_result(entry("alice", "s"), grade,
                                      LearnerState("s", True, "failed", 70.0), w)
    assert result.status == "passed" and result.score == result.max_score == 103
    assert result.percent == 100.0 and result.seconds == 61.5
    assert result.has_report


def test_a_result_without_grade_is_pending_or_says_how_it_ended() -> None:
    w = weights.default("select")
    pending = classroom.learner_result(entry("alice"), None, None, w)
    assert (pending.status, pending.grade, pending.score) == ("pending", None, None)
    assert not pending.has_report
    broke = classroom.learner_result(entry("alice"), None,
                                     LearnerState("ab" * 32, True, "timeout", 900.0), w)
    assert broke.status == "timeout" and broke.seconds == 900.0 and "without a result" in (
        broke.note)
    unfit = classroom.learner_result(entry("bob", problem="no main.py"), spec_grade(), None, w)
    assert (unfit.status, unfit.note, unfit.grade) == ("unfit", "no main.py", None)


def test_a_grade_of_another_submission_is_set_aside() -> None:
    stale = spec_grade(sha256="old")
    result = classroom.learner_result(entry("alice", "new"), stale,
                                      LearnerState("new", False, "", None),
                                      weights.default("select"))
    assert result.status == "pending" and result.grade is None


def test_a_partial_grade_of_a_broken_grading_keeps_its_status() -> None:
    result = graded("alice", status="error")
    assert result.status == "error" and result.grade is not None
    assert "partial" in result.note


def test_a_grade_that_cannot_be_scored_is_an_error() -> None:
    result = classroom.learner_result(entry("alice", "ab" * 32), spec_grade("udp"),
                                      None, weights.default("select"))
    assert result.status == "error" and "cannot be scored" in result.note


# -- class.csv --------------------------------------------------------------------------------

def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_csv_header_is_exactly_the_documented_one() -> None:
    text = classroom.csv_rows([])
    assert text == ("learner,score,max_score,percent,conformance,concurrency,robustness,"
                    "resources,security,performance,status,seconds\n")


def test_the_csv_has_one_row_per_learner_with_category_points() -> None:
    results = [graded("alice", spec_grade(sha256="a", ratio=0.6,
                                          failing={"conformance.sizes": "failed"}),
                      status="failed"),
               classroom.learner_result(entry("bob", problem="no main.py"), None, None,
                                        weights.default("select")),
               graded("carol", spec_grade(sha256="c"))]
    rows = parse_csv(classroom.csv_rows(results))
    assert [r["learner"] for r in rows] == ["alice", "bob", "carol"]
    alice, bob, carol = rows
    assert alice == {"learner": "alice", "score": "103", "max_score": "113", "percent": "91.2",
                     "conformance": "32", "concurrency": "35", "robustness": "20",
                     "resources": "13", "security": "", "performance": "3",
                     "status": "failed", "seconds": "61.5"}
    assert bob == {**dict.fromkeys(classroom.CSV_HEADER, ""), "learner": "bob",
                   "status": "unfit"}
    assert carol["performance"] == "5" and carol["score"] == "113"
    assert carol["percent"] == "100.0" and carol["status"] == "passed"


def test_the_csv_quotes_what_csv_must_and_never_starts_a_formula() -> None:
    odd = LearnerResult('a,"b"\nc', "pending")
    formula = LearnerResult("=HYPERLINK(\"http://x\")", "-1")
    text = classroom.csv_rows([odd, formula])
    assert '"a,""b""\nc"' in text
    rows = parse_csv(text)
    assert rows[0]["learner"] == 'a,"b"\nc'
    assert rows[1]["learner"] == "'=HYPERLINK(\"http://x\")" and rows[1]["status"] == "'-1"
    assert len(rows) == 2


# -- the class's figures ----------------------------------------------------------------------

def test_the_leaderboard_is_highest_ratio_first_ties_by_id() -> None:
    results = [graded("carol", spec_grade(sha256="c", ratio=0.9)),
               graded("alice", spec_grade(sha256="a", ratio=1.2)),
               graded("bob", spec_grade(sha256="b", ratio=0.9)),
               graded("dave", spec_grade(sha256="d")),  # not measured
               graded("erin", spec_grade(sha256="e", ratio=3.0,
                                         failing={"performance.throughput": "failed"}))]
    board = classroom.leaderboard(results)
    assert [(s.learner, s.ratio) for s in board] == [("alice", 1.2), ("bob", 0.9),
                                                      ("carol", 0.9)]
    assert board[0].submission == 1200.0 and board[0].reference == 1000.0
    assert board[0].unit == "requests/s"


def test_the_leaderboard_leaves_out_performance_that_does_not_count() -> None:
    off = weights.parse('exclude = ["performance.throughput"]', "select")
    results = [graded("alice", spec_grade(sha256="a", ratio=1.2), w=off)]
    assert classroom.leaderboard(results) == []


def test_the_most_failed_checks_are_those_half_the_graded_failed() -> None:
    fd = {"concurrency.fd-wall": "failed"}
    results = [graded("a", spec_grade(sha256="a", failing={**fd, "robustness.fuzz": "timeout"}),
                      status="failed"),
               graded("b", spec_grade(sha256="b", failing={**fd, "conformance.echo": "failed"}),
                      status="failed"),
               graded("c", spec_grade(sha256="c", failing={"robustness.fuzz": "failed"}),
                      status="failed"),
               graded("d", spec_grade(sha256="d")),
               graded("e", spec_grade(sha256="e", failing=dict.fromkeys(
                   ("concurrency.fd-wall", "robustness.fuzz", "conformance.echo"),
                   "skipped")), status="error"),
               classroom.learner_result(entry("f", problem="unfit"), None, None,
                                        weights.default("select"))]
    failures = classroom.check_failures(results)
    assert [(f.id, f.failed, f.graded) for f in failures] == [
        ("concurrency.fd-wall", ("a", "b"), 4), ("robustness.fuzz", ("a", "c"), 4),
        ("conformance.echo", ("b",), 4)]
    most = classroom.most_failed(failures)
    assert [f.id for f in most] == ["concurrency.fd-wall", "robustness.fuzz"]
    assert most[0].share == 0.5
    assert most[0].hint == spec.check("select", "concurrency.fd-wall").hint
    assert most[0].page == "docs/exercises/06-select-1024-wall.md"
    assert [f.id for f in classroom.most_failed(failures, share=0.75)] == []


def test_a_check_of_weight_zero_is_never_among_the_failed() -> None:
    off = weights.parse('exclude = ["concurrency.fd-wall"]', "select")
    results = [graded(n, spec_grade(sha256=n, failing={"concurrency.fd-wall": "failed"}),
                      w=off) for n in ("a", "b")]
    assert classroom.check_failures(results) == []


def test_the_summary_sorts_learners_and_counts_statuses() -> None:
    results = [graded("bob", spec_grade(sha256="b", failing={"conformance.echo": "failed"}),
                      status="failed"),
               graded("Alice", spec_grade(sha256="A")),
               graded("alice", spec_grade(sha256="a2", ratio=1.0)),
               classroom.learner_result(entry("Carol"), None, None, weights.default("select"))]
    summary = classroom.summarize("select", "net-2026", results, generated="2026-01-01T00:00Z")
    assert [r.learner for r in summary.results] == ["Alice", "alice", "bob", "Carol"]
    assert summary.counts() == {"passed": 2, "failed": 1, "error": 0, "timeout": 0,
                                "unfit": 0, "pending": 1}
    assert summary.max_score == 113 and summary.category_max["concurrency"] == 35
    assert summary.median_percent == 100.0  # of 94.5, 100 and 100 (the mean: 98.2)
    assert [s.learner for s in summary.leaderboard] == ["alice"]
    assert [f.id for f in summary.most_failed] == []  # 1 of 3
    assert [f.id for f in summary.failures] == ["conformance.echo"]


# -- index.html -------------------------------------------------------------------------------

def hostile_summary() -> classroom.ClassSummary:
    w = weights.parse('exclude = ["resources.threads"]', "select", f"{HOSTILE}.toml")
    evil = spec_grade(sha256="e", title=HOSTILE, hint=f"{HOSTILE} & more", ratio=0.7,
                      failing={"conformance.echo": "failed"})
    results = [
        graded("alice", spec_grade(sha256="a", ratio=1.1), w=w),
        graded("bob", spec_grade(sha256="b", failing={"conformance.echo": "failed",
                                                      "concurrency.fd-wall": "failed"}),
               status="failed", w=w),
        LearnerResult(HOSTILE, "failed", classroom.learner_result(
            entry("x", "e"), evil, None, w).grade, 3.0),
        LearnerResult("javascript:alert(1)", "passed", spec_grade(sha256="j"), 3.0),
        classroom.learner_result(entry("zed", problem=f"{HOSTILE}.bin is not executable"),
                                 None, None, w)]
    return classroom.summarize("select", f"class {HOSTILE}", results, w, "2026-01-01")


def test_the_page_escapes_ids_messages_hints_and_titles() -> None:
    page = class_page.index_html(hostile_summary())
    assert HOSTILE not in page
    assert "<script>" not in page.replace(f"<script>{class_page.SCRIPT}</script>", "")
    assert page.count("<script") == 1
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    # <title>, <h1>; the id in the table (data-v and text), the leaderboard and the failures;
    # zed's note; the CHECKS source.
    assert page.count(escaped) == 8
    assert f'<span class="note">{escaped}.bin is not executable</span>' in page
    assert f"Points from {escaped}.toml, 110 in all; not counted: resources.threads." in page


def test_the_page_escapes_quotes_in_attributes() -> None:
    sneaky = 'x" onmouseover="alert(1)'
    result = LearnerResult(sneaky, "passed", spec_grade(sha256="x"), 1.0, note=sneaky)
    page = class_page.index_html(classroom.summarize("select", sneaky, [result]))
    assert 'onmouseover="' not in page
    assert 'data-v="x&quot; onmouseover=&quot;alert(1)"' in page


def test_the_page_escapes_what_it_teaches() -> None:
    summary = hostile_summary()
    odd = classroom.CheckFailures(HOSTILE, HOSTILE, f"{HOSTILE} & more", HOSTILE,
                                  (HOSTILE,), 1)
    page = class_page.index_html(replace(summary, most_failed=(odd,), failures=(odd,)))
    assert page.count("<script") == 1
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<p>Hint: {escaped} &amp; more</p>" in page
    assert f"<p>The check: {escaped}.</p>" in page and f"<code>{escaped}</code>" in page


def test_the_page_loads_nothing_and_links_only_to_reports() -> None:
    page = class_page.index_html(hostile_summary())
    assert not re.search(r"https?://|<link\b|\bsrc=|@import|url\(", page)
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert policy and html.unescape(policy.group(1)) == class_page.CSP
    assert "default-src 'none'" in class_page.CSP
    links = re.findall(r'href="([^"]*)"', page)
    # In the order of the ids in lower case: '<' before 'a'.
    assert links == ["%3Cscript%3Ealert%281%29%3C%2Fscript%3E/report.html",
                     "alice/report.html", "bob/report.html",
                     "javascript%3Aalert%281%29/report.html"]
    assert all(link.endswith("/report.html") and ":" not in link for link in links)


def test_the_page_lists_every_learner_with_score_bars_and_status() -> None:
    summary = hostile_summary()
    page = class_page.index_html(summary)
    table = page[page.index('<table class="sortable" id="learners">'):]
    table = table[:table.index("</table>")]
    heads = re.findall(r'<th><button type="button">([^<]*)</button></th>', table)
    # No security column for select; resources still counts (fd-leak, memory).
    assert heads == ["learner", "score", "%", "conformance", "concurrency", "robustness",
                     "resources", "performance", "status", "seconds"]
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    assert len(rows) == len(summary.results) == 5
    alice = next(r for r in rows if ">alice<" in r)
    # 113 points but resources.threads' 3; a ratio of 1.1 earns all 5 of performance.
    assert 'data-v="110.0">110 / 110<' in alice and 'data-v="100.0">100<' in alice
    bob = next(r for r in rows if ">bob<" in r)
    assert 'title="concurrency: 25 / 35"' in bob and 'style="width:71.4%"' in bob
    zed = next(r for r in rows if ">zed<" in r)
    assert 'class="status unfit"' in zed and "href" not in zed


def test_the_page_has_the_leaderboard_and_what_to_teach() -> None:
    page = class_page.index_html(hostile_summary())
    board = page[page.index('<table id="leaderboard">'):]
    board = board[:board.index("</table>")]
    assert re.findall(r'<tr><td class="n">(\d+)</td><td>([^<]*)</td>', board) == [
        ("1", "alice"), ("2", "&lt;script&gt;alert(1)&lt;/script&gt;")]
    assert "0.70" in board and "1,100 requests/s" in board
    teach = page[page.index("What to teach next"):]
    assert "<code>conformance.echo</code>: failed by 2 of 4 (50%)" in teach
    # The spec's hint, not what a grade.json says (the hostile one's says HOSTILE).
    assert spec.check("select", "conformance.echo").hint in teach
    assert "&lt;script&gt;" not in teach.split("Every check someone failed")[0]
    assert "docs/exercises/11-write-your-own-echo.md" in teach
    assert "concurrency.fd-wall</code></td><td class=\"n\">1 of 4" in teach


def test_the_page_of_a_class_with_nothing_graded_says_so() -> None:
    results = [classroom.learner_result(entry("a"), None, None, weights.default("udp"))]
    page = class_page.index_html(classroom.summarize("udp", "c", results))
    assert "No learner was graded yet." in page
    assert "No performance figure" in page
    assert "1 learner: 1 pending." in page
