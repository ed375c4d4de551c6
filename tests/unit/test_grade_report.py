"""The grader's files from one grade dict: grade.json, report.md/html, junit.xml, platforms'."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from socklab.host.grade import report

STICKY = "docs/exercises/04-sticky-packets.md"
FDWALL = "docs/exercises/06-select-1024-wall.md"
BLOCKING = "docs/exercises/05-blocking-vs-concurrent.md"
ECHO = "docs/exercises/11-write-your-own-echo.md"

# What a learner's server may print: markup, a NUL, an escape sequence, a fence of its own.
HOSTILE_TAIL = ("listening on 0.0.0.0:7001\n<script>alert('tail')</script>\n"
                "bad\x00byte \x1b[31mred\x1b[0m\n```\nTraceback (most recent call last):\n")


def make_check(check_id: str, status: str = "passed", *, points: float | None = None,
               max_points: float = 5, message: str = "", page: str = ECHO,
               scored: bool = True, seconds: float = 0.5) -> dict[str, Any]:
    name = check_id.split(".", 1)[1]
    earned = (max_points if status == "passed" else 0.0) if points is None else points
    return {"id": check_id, "category": check_id.split(".", 1)[0],
            "title": f"title of {name}", "points": float(earned), "max_points": max_points,
            "status": status, "scored": scored,
            "message": message or f"{status} message of {name}",
            "hint": f"hint of {name}: read the page", "page": page,
            "reproduce": f"socklab probe grade --variant select --check {check_id}",
            "seconds": seconds, "details": {"sent": 1024}}


def make_grade(checks: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """A grade as the grader writes it: score, maximum and passed follow from the checks."""
    base: dict[str, Any] = {
        "schema": 1, "variant": "select",
        "submission": {"path": "srv.py", "name": "srv", "kind": "python", "sha256": "ab" * 32},
        "score": sum(c["points"] for c in checks),
        "max_score": float(sum(c["max_points"] for c in checks)),
        "passed": all(c["status"] == "passed" for c in checks if c["scored"]),
        "gradable": True, "checks": checks,
        "server": {"log": "server.log", "tail": "listening on 0.0.0.0:7001\n",
                   "exit_code": None, "restarts": 0},
        "performance": {"ratio": 0.93, "submission": 12000.0, "reference": 12900.0,
                        "unit": "requests/s"},
        "timings": {"started": "2026-12-04T12:00:00Z", "seconds": 61.6, "ready_seconds": 0.8},
        "versions": {"socklab": "0.1.0", "image": "socklab-lab:abc123"},
        "lab": {"kept": False, "enter": None}}
    return {**base, **overrides}


def full_marks() -> dict[str, Any]:
    return make_grade([
        make_check("conformance.greeting", max_points=4),
        make_check("conformance.sizes", max_points=8, page=STICKY),
        make_check("concurrency.fd-wall", max_points=10, page=FDWALL),
        make_check("performance.throughput", scored=False)])


def with_failures() -> dict[str, Any]:
    checks = [
        make_check("conformance.greeting", max_points=4, message="greeting came on time"),
        make_check("conformance.sizes", "failed", max_points=8, page=STICKY,
                   message=("sent 16 MiB (b'aaaa'…); expected 16 MiB; 64 KiB came, then "
                            "the server closed the connection. " + "x" * 80)),
        make_check("concurrency.fd-wall", "timeout", max_points=10, page=FDWALL,
                   message="1,100 connections: no answer within 90 s", seconds=90.0),
        make_check("concurrency.one-thread", "skipped", page=BLOCKING,
                   message="skipped: the server's process could not be sampled"),
        make_check("robustness.reset", message="the same process served the next client"),
        make_check("performance.throughput", points=3.0, scored=False,
                   message="0.55 × the lab's server: 60% of the points")]
    return make_grade(checks, server={"log": "server.log", "tail": HOSTILE_TAIL,
                                      "exit_code": 1, "restarts": 2},
                      performance={"ratio": 0.55, "submission": 7100.0,
                                   "reference": 12900.0, "unit": "requests/s"},
                      lab={"kept": True, "enter": "docker exec -it socklab-grade-7-select bash"})


def not_gradable() -> dict[str, Any]:
    checks = [make_check(c, "skipped", message="the server never listened on port 7001")
              for c in ("conformance.greeting", "conformance.echo")]
    return make_grade(checks, gradable=False, passed=False, performance=None,
                      server={"log": "server.log", "exit_code": 1, "restarts": 0,
                              "tail": "  File \"srv.py\", line 3\nSyntaxError: invalid syntax\n"})


GRADES = {"full": full_marks, "failures": with_failures, "not-gradable": not_gradable}


@pytest.fixture(params=sorted(GRADES))
def grade(request: pytest.FixtureRequest) -> dict[str, Any]:
    return GRADES[request.param]()


def failures_part(markdown: str) -> str:
    """report.md from its failures heading to the next second-level heading."""
    start = markdown.index("## What did not pass")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end if end != -1 else None]


# -- grade.json ------------------------------------------------------------------------------

def test_grade_json_round_trips(grade: dict[str, Any]) -> None:
    text = report.grade_json(grade)
    assert json.loads(text) == grade
    assert text.endswith("}\n")


# -- report.md -------------------------------------------------------------------------------

def test_markdown_gives_each_failure_its_message_hint_page_and_reproduce() -> None:
    grade = with_failures()
    part = failures_part(report.report_md(grade))
    failing = [c for c in grade["checks"] if c["status"] in ("failed", "timeout")]
    assert [c["id"] for c in failing] == ["conformance.sizes", "concurrency.fd-wall"]
    for check in failing:
        for field in ("message", "hint", "page", "reproduce", "title"):
            assert check[field] in part, (check["id"], field)
    for check in grade["checks"]:
        if check["status"] in ("passed", "skipped"):
            assert check["message"] not in part, check["id"]
    assert "root of the socklab repository" in part


def test_markdown_has_the_score_the_verdict_and_every_check_in_the_table() -> None:
    grade = with_failures()
    markdown = report.report_md(grade)
    # 4 + 0 + 0 + 0 + 5 + 3 earned of 4 + 8 + 10 + 5 + 5 + 5.
    assert "12 / 37" in markdown and "FAILED" in markdown
    assert "3 of 5 scored checks did not pass" in markdown
    for check in grade["checks"]:
        row = f"| {check['id']} | {check['status']} | {report.check_points(check)}"
        assert row in markdown
    assert markdown.splitlines()[0] == "# socklab grade: `srv` (select)"
    passed = report.report_md(full_marks())
    assert "27 / 27" in passed and "PASSED" in passed and "What did not pass" not in passed


def test_markdown_shows_the_tail_in_a_fence_longer_than_its_own_backticks() -> None:
    markdown = report.report_md(with_failures())
    assert "<script>alert('tail')</script>" in markdown
    tail_block = markdown[markdown.index("## Server output"):markdown.index("## What did not")]
    opening = next(line for line in tail_block.splitlines() if line.startswith("```"))
    assert opening == "````text"
    assert "exited with code 1" in tail_block and "restarted 2 times" in tail_block


@pytest.mark.parametrize("render", [report.report_md, report.report_html])
def test_reports_write_control_characters_out_instead_of_passing_them_on(render: Any) -> None:
    text = render(with_failures())
    assert "\x00" not in text and "\x1b" not in text
    assert "bad\\x00byte \\x1b[31mred\\x1b[0m" in text


def test_markdown_says_when_the_server_printed_nothing() -> None:
    grade = full_marks()
    grade["server"] = {**grade["server"], "tail": ""}
    markdown = report.report_md(grade)
    assert "The server wrote nothing." in markdown
    assert "still running at the end" in markdown and "not ready" not in markdown
    grade["server"]["ready_problem"] = "nothing listened on 7001/tcp within 10 s"
    assert "It was not ready: nothing listened on 7001/tcp within 10 s." in report.report_md(grade)
    assert "The server wrote nothing." not in report.report_md(full_marks())


def test_markdown_has_the_performance_line_and_the_keep_note() -> None:
    kept = report.report_md(with_failures())
    assert "0.55 × the lab's own server (7,100 against 12,900 requests/s)" in kept
    assert "docker exec -it socklab-grade-7-select bash" in kept and "KEEP" in kept
    not_kept = report.report_md(full_marks())
    assert "KEEP" not in not_kept and "docker exec" not in not_kept
    assert "Performance: not measured." in report.report_md(not_gradable())


def test_markdown_of_a_server_that_could_not_be_graded_says_why() -> None:
    markdown = report.report_md(not_gradable())
    assert "NOT GRADABLE" in markdown
    assert "could not be graded: the server never listened on port 7001" in markdown
    assert "## Skipped" in markdown


# -- report.html -----------------------------------------------------------------------------

def test_html_escapes_the_servers_output_and_loads_nothing_from_outside() -> None:
    page = report.report_html(with_failures())
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;tail&#x27;)&lt;/script&gt;" in page
    assert not re.search(r"https?://", page)
    assert not re.search(r"<link\b|\bsrc=|@import|url\(", page)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_html_has_the_same_content_as_the_markdown() -> None:
    grade = with_failures()
    page = report.report_html(grade)
    for check in grade["checks"]:
        assert f'<span class="status {check["status"]}">' in page
    for check in report.attention(grade):
        for field in ("hint", "page", "reproduce"):
            assert report._e(check[field]) in page, (check["id"], field)
        assert report._e(check["message"]) in page
    assert "12 / 37" in page and report._e(grade["lab"]["enter"]) in page
    assert report._e("0.55 × the lab's own server") in page


# -- junit.xml -------------------------------------------------------------------------------

def parse_junit(grade: dict[str, Any]) -> ET.Element:
    return ET.fromstring(report.junit_xml(grade).encode())


def test_junit_parses_and_counts_timeouts_as_failures(grade: dict[str, Any]) -> None:
    root = parse_junit(grade)
    suite = root.find("testsuite")
    assert root.tag == "testsuites" and suite is not None
    statuses = [c["status"] for c in grade["checks"]]
    extra = 0 if grade["gradable"] else 1
    for element in (root, suite):
        assert int(element.get("tests", "-1")) == len(statuses) + extra
        assert int(element.get("failures", "-1")) == statuses.count("failed") + statuses.count(
            "timeout")
        assert int(element.get("skipped", "-1")) == statuses.count("skipped")
        assert int(element.get("errors", "-1")) == extra
    cases = suite.findall("testcase")
    assert len(cases) == int(suite.get("tests", "-1"))
    assert len(suite.findall("testcase/failure")) == int(suite.get("failures", "-1"))
    assert len(suite.findall("testcase/skipped")) == int(suite.get("skipped", "-1"))
    assert list(root.iter("properties")) == []
    for case, check in zip(cases, grade["checks"], strict=False):
        assert (case.get("classname"), case.get("name")) == (check["category"], check["id"])
        assert float(case.get("time", "-1")) == pytest.approx(check["seconds"], abs=1e-3)


def test_junit_marks_timeouts_and_keeps_what_to_do_in_the_failure() -> None:
    grade = with_failures()
    suite = parse_junit(grade).find("testsuite")
    assert suite is not None
    types = {case.get("name"): failure.get("type")
             for case in suite.findall("testcase") for failure in case.findall("failure")}
    assert types == {"conformance.sizes": "failed", "concurrency.fd-wall": "timeout"}
    failure = suite.find("testcase[@name='concurrency.fd-wall']/failure")
    assert failure is not None and failure.text is not None
    check = next(c for c in grade["checks"] if c["id"] == "concurrency.fd-wall")
    assert failure.get("message") == check["message"]
    assert check["hint"] in failure.text and check["reproduce"] in failure.text


def test_junit_strips_what_xml_cannot_carry_from_the_servers_output() -> None:
    suite = parse_junit(with_failures()).find("testsuite")
    assert suite is not None
    out = suite.findtext("system-out")
    assert "<script>alert('tail')</script>" in out
    assert "\x00" not in out and "\x1b" not in out
    assert "badbyte [31mred[0m" in out


def test_junit_of_a_server_that_could_not_be_graded_has_an_error() -> None:
    suite = parse_junit(not_gradable()).find("testsuite")
    assert suite is not None
    error = suite.find("testcase[@name='grade.gradable']/error")
    assert error is not None
    assert error.get("message") == "the server never listened on port 7001"


# -- gradescope/results.json -----------------------------------------------------------------

# The fields of Gradescope's results.json specification (top level, then per test).
GRADESCOPE_TOP = {"score", "execution_time", "output", "output_format", "test_output_format",
                  "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests",
                  "leaderboard"}
GRADESCOPE_TEST = {"score", "max_score", "status", "name", "name_format", "number", "output",
                   "output_format", "tags", "visibility", "extra_data"}


def test_gradescope_scores_add_up_and_use_only_its_fields(grade: dict[str, Any]) -> None:
    results = json.loads(report.gradescope_json(grade))
    assert set(results) <= GRADESCOPE_TOP
    assert all(set(test) <= GRADESCOPE_TEST for test in results["tests"])
    assert sum(t["score"] for t in results["tests"]) == pytest.approx(results["score"])
    assert results["score"] == grade["score"]
    assert sum(t["max_score"] for t in results["tests"]) == grade["max_score"]
    assert {t["status"] for t in results["tests"]} <= {"passed", "failed"}
    assert isinstance(results["execution_time"], int)
    assert results["execution_time"] == round(grade["timings"]["seconds"])
    assert [t["name"] for t in results["tests"]] == [
        f"{c['id']}: {c['title']}" for c in grade["checks"]]


def test_gradescope_says_why_a_timeout_or_skip_failed() -> None:
    grade = with_failures()
    tests = {t["name"].split(":")[0]: t for t in json.loads(report.gradescope_json(grade))["tests"]}
    assert tests["concurrency.fd-wall"]["status"] == "failed"
    assert tests["concurrency.fd-wall"]["output"].startswith("Timed out")
    assert tests["concurrency.one-thread"]["status"] == "failed"
    assert tests["concurrency.one-thread"]["output"].startswith("Skipped")
    sizes = tests["conformance.sizes"]["output"]
    check = next(c for c in grade["checks"] if c["id"] == "conformance.sizes")
    for field in ("message", "hint", "page", "reproduce"):
        assert check[field] in sizes, field
    assert tests["performance.throughput"]["status"] == "passed"
    assert tests["performance.throughput"]["score"] == 3.0


def test_gradescope_leaderboard_only_with_a_performance_figure() -> None:
    results = json.loads(report.gradescope_json(with_failures()))
    assert results["leaderboard"] == [{"name": "throughput ratio", "value": 0.55}]
    assert "leaderboard" not in json.loads(report.gradescope_json(not_gradable()))


# -- prairielearn/results.json ---------------------------------------------------------------

def test_prairielearn_score_is_the_share_of_the_maximum(grade: dict[str, Any]) -> None:
    results = json.loads(report.prairielearn_json(grade))
    assert results["gradable"] is grade["gradable"]
    assert 0.0 <= results["score"] <= 1.0
    expected = grade["score"] / grade["max_score"] if grade["gradable"] else 0.0
    assert results["score"] == pytest.approx(expected)
    assert [(t["name"], t["points"], t["max_points"]) for t in results["tests"]] == [
        (c["id"], c["points"], c["max_points"]) for c in grade["checks"]]


def test_prairielearn_not_gradable_scores_zero_and_says_why() -> None:
    grade = not_gradable()
    grade["score"] = 3.0  # whatever a broken run left there, PrairieLearn gets 0
    results = json.loads(report.prairielearn_json(grade))
    assert results["gradable"] is False and results["score"] == 0.0
    assert results["format_errors"] == ["the server never listened on port 7001"]
    assert "SyntaxError" in results["output"]
    assert "format_errors" not in json.loads(report.prairielearn_json(with_failures()))


# -- the terminal table ----------------------------------------------------------------------

def test_summary_table_has_a_line_per_check_and_the_total() -> None:
    grade = with_failures()
    lines = report.summary_table(grade).splitlines()
    for check in grade["checks"]:
        line = next(line for line in lines if line.startswith(check["id"] + " "))
        assert check["status"] in line and report.check_points(check) in line
    sizes = next(line for line in lines if line.startswith("conformance.sizes "))
    reason = sizes.split(report.check_points(grade["checks"][1]), 1)[1].strip()
    assert reason.endswith("…") and len(reason) <= report.REASON_WIDTH
    assert grade["checks"][1]["message"].startswith(reason[:-1])
    total = next(line for line in lines if line.startswith("total"))
    assert "12 / 37" in total and "FAILED" in total
    greeting = next(line for line in lines if line.startswith("conformance.greeting "))
    assert "greeting came on time" not in greeting


def test_summary_table_of_a_server_that_could_not_be_graded() -> None:
    table = report.summary_table(not_gradable())
    assert "NOT GRADABLE" in table
    assert "not gradable: the server never listened on port 7001" in table


# -- write_all -------------------------------------------------------------------------------

def test_write_all_writes_every_file_as_rendered(tmp_path: Path) -> None:
    grade = with_failures()
    paths = report.write_all(grade, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in paths] == list(report.FILES)
    assert json.loads(paths[0].read_text()) == grade
    assert paths[1].read_text() == report.report_md(grade)
    assert paths[2].read_text() == report.report_html(grade)
    assert paths[3].read_text() == report.junit_xml(grade)
    assert json.loads(paths[4].read_text())["score"] == grade["score"]
    assert json.loads(paths[5].read_text())["score"] == pytest.approx(12 / 37)


def test_a_grade_the_grader_could_not_finish_says_why_it_is_not_gradable() -> None:
    from socklab.host.grade.report import not_gradable_reason

    assert not_gradable_reason({"checks": [], "grader_error": "the grader failed: OSError: x"}) \
        == "the grader failed: OSError: x"
