"""The files a grading run leaves: one ``grade`` dict rendered for each reader.

``make grade`` ends with one dict, ``grade`` (its fields: docs/grading.md,
"Files it writes"). This module turns it into what each reader takes:
``grade.json`` (the dict itself), ``report.md`` and ``report.html`` (for the
learner: the score, every check, what the server printed, and for each check
that did not pass what was sent and what came, the hint, the page to read and
the command that replays it), ``junit.xml`` (CI systems and CodeGrade),
``gradescope/results.json`` (Gradescope's autograder results) and
``prairielearn/results.json`` (PrairieLearn's external grader results), plus
the plain table printed on the terminal at the end of a run.

Every renderer is a pure function of the dict (str out); ``write_all`` is the
only function that touches the disk. The server's output is the learner's and
may hold anything (markup, control characters): the HTML escapes it, the XML
drops what XML 1.0 cannot carry, the JSON files escape it as JSON does.
"""

from __future__ import annotations

import html
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Grade = Mapping[str, Any]
Check = Mapping[str, Any]

# Statuses that count against a check in the failures part of the reports.
ATTENTION: tuple[str, ...] = ("failed", "timeout")

# Where each file goes under the output directory, in the order write_all writes them.
FILES: tuple[str, ...] = (
    "grade.json", "report.md", "report.html", "junit.xml",
    "gradescope/results.json", "prairielearn/results.json")

# A failure's reason in the terminal table is cut to this many characters.
REASON_WIDTH = 70

PAGES_NOTE = ("Pages are named by their path from the root of the socklab repository "
              "(this report sits in the output directory, not beside them).")

# Characters XML 1.0 does not allow anywhere (C0 controls but tab, LF, CR; lone
# surrogates; U+FFFE and U+FFFF): a server's output can hold any of them.
_XML_FORBIDDEN = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Control characters a learner should see rather than have a viewer act on (report.md/html).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


# -- shared wording --------------------------------------------------------------------------

def number(value: float | int | None) -> str:
    """Points as a learner reads them: ``87``, ``1.5``, ``0.25`` (at most two decimals)."""
    if value is None:
        return "–"
    text = f"{float(value):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def score_text(grade: Grade) -> str:
    """``87 / 100``."""
    return f"{number(grade['score'])} / {number(grade['max_score'])}"


def check_points(check: Check) -> str:
    """``3 / 8``: what a check earned of what it is worth."""
    return f"{number(check['points'])} / {number(check['max_points'])}"


def attention(grade: Grade) -> list[Check]:
    """The checks that failed or timed out, in the order they ran."""
    return [c for c in grade["checks"] if c["status"] in ATTENTION]


def skipped(grade: Grade) -> list[Check]:
    return [c for c in grade["checks"] if c["status"] == "skipped"]


def visible(text: str) -> str:
    """``text`` with its control characters written out (``\\x1b``), tabs and newlines kept."""
    text = text.replace("\r\n", "\n")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def cut(text: str, width: int = REASON_WIDTH) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 1].rstrip() + "…"


def not_gradable_reason(grade: Grade) -> str:
    """Why a run could not grade the server, from what the run recorded.

    The grader's own failure, when it failed (``grader_error``); else the
    first message of a check that did not pass (the grader writes the cause
    there); else the last line the server printed.
    """
    if grade.get("grader_error"):
        return str(grade["grader_error"])
    for check in grade["checks"]:
        if check["status"] != "passed" and check.get("message"):
            return first_line(check["message"])
    tail = [line for line in (grade.get("server") or {}).get("tail", "").splitlines()
            if line.strip()]
    if tail:
        return f"the server's last output: {tail[-1].strip()}"
    return "the grader could not run the checks"


def verdict(grade: Grade) -> str:
    """``PASSED``, ``FAILED`` or ``NOT GRADABLE``."""
    if not grade["gradable"]:
        return "NOT GRADABLE"
    return "PASSED" if grade["passed"] else "FAILED"


def verdict_sentence(grade: Grade) -> str:
    """What the verdict means, in one sentence."""
    if not grade["gradable"]:
        return f"The server could not be graded: {not_gradable_reason(grade)}."
    scored = [c for c in grade["checks"] if c.get("scored", True)]
    missed = [c for c in scored if c["status"] != "passed"]
    if not missed:
        return f"Every scored check passed ({len(scored)} of {len(scored)})."
    return f"{len(missed)} of {len(scored)} scored checks did not pass."


def performance_text(performance: Mapping[str, Any] | None) -> str:
    """The performance line: the ratio to the lab's own server and both figures."""
    if not performance:
        return "Performance: not measured."
    unit = performance["unit"]
    load = f", {performance['load']}" if performance.get("load") else ""
    return (f"Performance: {performance['ratio']:.2f} × the lab's own server "
            f"({performance['submission']:,.0f} against {performance['reference']:,.0f} "
            f"{unit}{load}).")


def server_sentence(server: Mapping[str, Any]) -> str:
    """How the server ended and where its whole output is."""
    code = server.get("exit_code")
    ended = ("it was still running at the end" if code is None
             else f"it exited with code {code}")
    restarts = server.get("restarts", 0)
    again = (f"; it was restarted {restarts} time{'s' if restarts != 1 else ''}"
             if restarts else "")
    ready = server.get("ready_problem")
    not_ready = f" It was not ready: {ready}." if ready else ""
    return (f"The last lines of the server's stdout and stderr (all of it: "
            f"{server.get('log', 'server.log')}); {ended}{again}.{not_ready}")


def status_reason(check: Check) -> str:
    """What a Gradescope or PrairieLearn reader is told first when a check did not pass."""
    return {"timeout": "Timed out.", "skipped": "Skipped."}.get(check["status"], "")


def advice(check: Check) -> str:
    """Message, hint, page and reproduce command of a check, as plain text."""
    parts = [check.get("message") or ""]
    if check.get("hint"):
        parts.append(f"Hint: {check['hint']}")
    if check.get("page"):
        parts.append(f"Read: {check['page']} (in the socklab repository)")
    if check.get("reproduce"):
        parts.append(f"Reproduce from a client host:\n{check['reproduce']}")
    return "\n\n".join(p for p in parts if p)


def footer_lines(grade: Grade) -> list[str]:
    timings, versions = grade.get("timings") or {}, grade.get("versions") or {}
    submission = grade["submission"]
    lines = [f"Submission: {submission['path']} ({submission['kind']}), "
             f"sha256 {submission.get('sha256') or '–'}."]
    if timings:
        ready = timings.get("ready_seconds")
        ready_text = f"; the server was ready after {ready:.1f} s" if ready is not None else ""
        lines.append(f"Graded {timings.get('started', '–')} in "
                     f"{timings.get('seconds', 0):.1f} s{ready_text}.")
    if versions:
        lines.append(f"socklab {versions.get('socklab', '–')}, "
                     f"image {versions.get('image', '–')}.")
    return lines


# -- grade.json ------------------------------------------------------------------------------

def grade_json(grade: Grade) -> str:
    """The dict as it is, indented, with a trailing newline."""
    return json.dumps(grade, indent=2, ensure_ascii=False) + "\n"


# -- report.md -------------------------------------------------------------------------------

def _longest_run(text: str, char: str) -> int:
    return max((len(m) for m in re.findall(f"{re.escape(char)}+", text)), default=0)


def fence(text: str, info: str = "") -> list[str]:
    """``text`` in a fenced block whose fence is longer than any backtick run inside it."""
    ticks = "`" * max(3, _longest_run(text, "`") + 1)
    return [f"{ticks}{info}", *(text.rstrip("\n").splitlines() or [""]), ticks]


def code(text: str) -> str:
    """``text`` as an inline code span, whatever backticks it holds."""
    ticks = "`" * (_longest_run(text, "`") + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def report_md(grade: Grade) -> str:
    """report.md: for the learner, what passed, what did not, and what to do about it."""
    submission, server = grade["submission"], grade.get("server") or {}
    lines = [f"# socklab grade: {code(submission['name'])} ({grade['variant']})", "",
             f"**Score: {score_text(grade)} — {verdict(grade)}.** {verdict_sentence(grade)}", ""]
    lines += ["## Checks", "", "| check | status | points |", "|---|---|---|"]
    for check in grade["checks"]:
        note = "" if check.get("scored", True) else " (not scored: earns points, never fails)"
        lines.append(f"| {check['id']} | {check['status']} | {check_points(check)}{note} |")
    lines += ["", "## Server output", "", server_sentence(server), ""]
    tail = visible(server.get("tail") or "")
    lines += fence(tail, "text") if tail.strip() else ["The server wrote nothing."]
    failing = attention(grade)
    if failing:
        lines += ["", "## What did not pass", "", PAGES_NOTE]
        for check in failing:
            lines += ["", f"### {check['id']}: {check['status']}, {check_points(check)}", "",
                      f"The check: {check['title']}.", "", "What happened:", ""]
            lines += fence(visible(check.get("message") or "(no message)"), "text")
            lines += ["", f"Hint: {check['hint']}", "", f"Read: {code(check['page'])}", "",
                      "Reproduce it from a client host:", ""]
            lines += fence(check.get("reproduce") or "", "sh")
    left_out = skipped(grade)
    if left_out:
        lines += ["", "## Skipped", ""]
        lines += [f"- {check['id']}: {cut(visible(check.get('message') or 'skipped'), 200)}"
                  for check in left_out]
    lines += ["", "## Performance", "", performance_text(grade.get("performance"))]
    lab = grade.get("lab") or {}
    if lab.get("kept"):
        lines += ["", "## The lab was kept", "",
                  "The lab is still running (KEEP); enter it with", ""]
        lines += fence(lab.get("enter") or "", "sh")
    lines += ["", "---", "", *(f"{line}  " for line in footer_lines(grade))]
    return "\n".join(lines).rstrip() + "\n"


# -- report.html -----------------------------------------------------------------------------

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1f2328; background: #fff; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; } th, td { padding: .25rem .75rem; text-align: left;
       border-bottom: 1px solid #d0d7de; }
pre { background: #f6f8fa; padding: .75rem; overflow-x: auto; white-space: pre-wrap;
      word-break: break-all; }
code { background: #f6f8fa; padding: 0 .2rem; }
.status { font-weight: 600; padding: 0 .4rem; border-radius: .3rem; }
.passed { color: #116329; background: #dafbe1; }
.failed { color: #82071e; background: #ffebe9; }
.timeout { color: #7d4e00; background: #fff8c5; }
.skipped { color: #424a53; background: #eaeef2; }
.verdict { font-size: 1.2rem; }
.failure { border-left: .3rem solid #cf222e; padding-left: 1rem; margin: 1.5rem 0; }
.failure.timeout-check { border-left-color: #bf8700; }
.note { color: #59636e; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _status(status: str) -> str:
    return f'<span class="status {_e(status)}">{_e(status)}</span>'


def _verdict_class(grade: Grade) -> str:
    return {"PASSED": "passed", "FAILED": "failed"}.get(verdict(grade), "skipped")


def report_html(grade: Grade) -> str:
    """report.html: report.md's content as one page, with no file or link outside it."""
    submission, server = grade["submission"], grade.get("server") or {}
    title = f"socklab grade: {submission['name']} ({grade['variant']})"
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_e(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
           f"<h1>socklab grade: <code>{_e(submission['name'])}</code> "
           f"({_e(grade['variant'])})</h1>",
           f'<p class="verdict"><strong>Score: {_e(score_text(grade))}</strong> '
           f'<span class="status {_verdict_class(grade)}">{_e(verdict(grade))}</span> '
           f"{_e(verdict_sentence(grade))}</p>",
           "<h2>Checks</h2>", "<table>",
           "<tr><th>check</th><th>status</th><th>points</th></tr>"]
    for check in grade["checks"]:
        note = ("" if check.get("scored", True)
                else ' <span class="note">(not scored: earns points, never fails)</span>')
        out.append(f"<tr><td>{_e(check['id'])}</td><td>{_status(check['status'])}</td>"
                   f"<td>{_e(check_points(check))}{note}</td></tr>")
    out += ["</table>", "<h2>Server output</h2>", f"<p>{_e(server_sentence(server))}</p>"]
    tail = visible(server.get("tail") or "")
    out.append(f"<pre>{_e(tail)}</pre>" if tail.strip()
               else '<p class="note">The server wrote nothing.</p>')
    failing = attention(grade)
    if failing:
        out += ["<h2>What did not pass</h2>", f'<p class="note">{_e(PAGES_NOTE)}</p>']
        for check in failing:
            extra = " timeout-check" if check["status"] == "timeout" else ""
            out += [f'<section class="failure{extra}">',
                    f"<h3>{_e(check['id'])} {_status(check['status'])} "
                    f"{_e(check_points(check))}</h3>",
                    f"<p>The check: {_e(check['title'])}.</p>",
                    "<p>What happened:</p>",
                    f"<pre>{_e(visible(check.get('message') or '(no message)'))}</pre>",
                    f"<p>Hint: {_e(check['hint'])}</p>",
                    f"<p>Read: <code>{_e(check['page'])}</code></p>",
                    "<p>Reproduce it from a client host:</p>",
                    f"<pre>{_e(check.get('reproduce') or '')}</pre>", "</section>"]
    left_out = skipped(grade)
    if left_out:
        out += ["<h2>Skipped</h2>", "<ul>"]
        out += [f"<li>{_e(c['id'])}: {_e(cut(visible(c.get('message') or 'skipped'), 200))}</li>"
                for c in left_out]
        out.append("</ul>")
    out += ["<h2>Performance</h2>", f"<p>{_e(performance_text(grade.get('performance')))}</p>"]
    lab = grade.get("lab") or {}
    if lab.get("kept"):
        out += ["<h2>The lab was kept</h2>",
                "<p>The lab is still running (KEEP); enter it with</p>",
                f"<pre>{_e(lab.get('enter') or '')}</pre>"]
    out += ["<hr>", *(f'<p class="note">{_e(line)}</p>' for line in footer_lines(grade)),
            "</body>", "</html>"]
    return "\n".join(out) + "\n"


# -- junit.xml -------------------------------------------------------------------------------

def xml_text(text: object) -> str:
    """``text`` without the characters XML 1.0 forbids (ElementTree escapes the rest)."""
    return _XML_FORBIDDEN.sub("", str(text))


def _seconds(value: float | None) -> str:
    return f"{float(value or 0):.3f}"


def junit_xml(grade: Grade) -> str:
    """junit.xml in the xunit2 flavour: one suite, one testcase per check.

    ``failures`` counts failed and timed-out checks (a timeout is a failure of
    type ``timeout``); a run that could not grade the server adds a testcase
    ``grade.gradable`` with an ``<error>``, so that a CI job goes red rather
    than green on zero tests. Testcases carry no ``<properties>`` (xunit2 has
    none there, and CodeGrade rejects them).
    """
    checks = grade["checks"]
    failures = sum(c["status"] in ATTENTION for c in checks)
    skipped_count = sum(c["status"] == "skipped" for c in checks)
    errors = 0 if grade["gradable"] else 1
    counts = {"tests": str(len(checks) + errors), "failures": str(failures),
              "errors": str(errors), "skipped": str(skipped_count),
              "time": _seconds((grade.get("timings") or {}).get("seconds"))}
    name = f"socklab.grade.{grade['variant']}"
    root = ET.Element("testsuites", {"name": xml_text(name), **counts})
    suite = ET.SubElement(root, "testsuite", {"name": xml_text(name), **counts})
    started = (grade.get("timings") or {}).get("started")
    if started:
        suite.set("timestamp", xml_text(started))
    for check in checks:
        case = ET.SubElement(suite, "testcase", {
            "classname": xml_text(check["category"]), "name": xml_text(check["id"]),
            "time": _seconds(check.get("seconds"))})
        if check["status"] in ATTENTION:
            failure = ET.SubElement(case, "failure", {
                "message": xml_text(first_line(check.get("message") or check["status"])),
                "type": "timeout" if check["status"] == "timeout" else "failed"})
            failure.text = xml_text(advice(check))
        elif check["status"] == "skipped":
            ET.SubElement(case, "skipped", {
                "message": xml_text(first_line(check.get("message") or "skipped"))})
    if not grade["gradable"]:
        case = ET.SubElement(suite, "testcase",
                             {"classname": "grade", "name": "grade.gradable", "time": "0.000"})
        error = ET.SubElement(case, "error", {
            "message": xml_text(not_gradable_reason(grade)), "type": "not-gradable"})
        error.text = xml_text(verdict_sentence(grade))
    system_out = ET.SubElement(suite, "system-out")
    system_out.text = xml_text((grade.get("server") or {}).get("tail") or "")
    ET.indent(root)
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            + ET.tostring(root, encoding="unicode") + "\n")


# -- gradescope/results.json -----------------------------------------------------------------

def summary_line(grade: Grade) -> str:
    """One sentence for a platform's top-level message."""
    failing = [c["id"] for c in attention(grade)]
    text = (f"socklab grade, variant {grade['variant']}, {grade['submission']['name']}: "
            f"{score_text(grade)}, {verdict(grade).lower()}. {verdict_sentence(grade)}")
    if failing:
        text += f" Did not pass: {', '.join(failing)}."
    return text


def _platform_output(check: Check) -> str:
    """A check's text for Gradescope and PrairieLearn: why first, then what to do."""
    if check["status"] == "passed":
        return check.get("message") or ""
    return "\n\n".join(p for p in (status_reason(check), advice(check)) if p)


def gradescope_json(grade: Grade) -> str:
    """Gradescope's autograder results.json, fields as its specification names them.

    Each check is a test with an explicit ``status``: a timed-out or skipped
    check is ``failed``, its output starting with why. A performance check that
    ran is ``passed`` with the points its band earned. ``output_format`` is
    ``text`` so that the summary is shown as written, never as HTML.
    """
    tests = [{"name": f"{c['id']}: {c['title']}", "score": c["points"],
              "max_score": c["max_points"],
              "status": "passed" if c["status"] == "passed" else "failed",
              "output": _platform_output(c), "visibility": "visible"}
             for c in grade["checks"]]
    results: dict[str, Any] = {
        "score": grade["score"],
        "execution_time": round((grade.get("timings") or {}).get("seconds") or 0),
        "output": summary_line(grade), "output_format": "text",
        "extra_data": {"socklab": {
            "schema": grade["schema"], "variant": grade["variant"],
            "gradable": grade["gradable"], "sha256": grade["submission"].get("sha256"),
            "versions": grade.get("versions") or {}}},
        "tests": tests}
    performance = grade.get("performance")
    if performance:
        results["leaderboard"] = [{"name": "throughput ratio", "value": performance["ratio"]}]
    return json.dumps(results, indent=2, ensure_ascii=False) + "\n"


# -- prairielearn/results.json ---------------------------------------------------------------

def fraction(grade: Grade) -> float:
    """The score as PrairieLearn takes it: a share of the maximum in [0, 1]."""
    if not grade["gradable"] or not grade["max_score"]:
        return 0.0
    return min(1.0, max(0.0, float(grade["score"]) / float(grade["max_score"])))


def prairielearn_json(grade: Grade) -> str:
    """PrairieLearn's external grader results.json (``gradable``, ``score`` in [0, 1])."""
    results: dict[str, Any] = {
        "gradable": bool(grade["gradable"]), "score": fraction(grade),
        "message": summary_line(grade),
        "output": (grade.get("server") or {}).get("tail") or "",
        "tests": [{"name": c["id"], "description": c["title"], "points": c["points"],
                   "max_points": c["max_points"],
                   "message": first_line(c.get("message") or "") or c["status"],
                   "output": _platform_output(c)}
                  for c in grade["checks"]]}
    if not grade["gradable"]:
        results["format_errors"] = [not_gradable_reason(grade)]
    return json.dumps(results, indent=2, ensure_ascii=False) + "\n"


# -- the terminal ----------------------------------------------------------------------------

def summary_table(grade: Grade) -> str:
    """The plain table printed at the end of a run: one line per check, then the total."""
    checks: Sequence[Check] = grade["checks"]
    width = max([len(c["id"]) for c in checks] + [len("check"), len("total")])
    points = [check_points(c) for c in checks]
    points_width = max([len(p) for p in points] + [len("points"), len(score_text(grade))])
    row = f"{{:<{width}}}  {{:<7}}  {{:>{points_width}}}  {{}}"
    lines = [row.format("check", "status", "points", "").rstrip()]
    for check, earned in zip(checks, points, strict=True):
        reason = ""
        if check["status"] != "passed":
            reason = cut(first_line(check.get("message") or "")) or check["status"]
        elif not check.get("scored", True) and check["points"] != check["max_points"]:
            reason = "not scored: earns points, never fails"
        lines.append(row.format(check["id"], check["status"], earned, reason).rstrip())
    lines.append(row.format("total", "", score_text(grade), verdict(grade)).rstrip())
    if not grade["gradable"]:
        lines.append(f"not gradable: {cut(not_gradable_reason(grade), 100)}")
    if grade.get("performance"):
        lines.append(performance_text(grade["performance"]))
    return "\n".join(lines) + "\n"


# -- writing ---------------------------------------------------------------------------------

RENDERERS = (grade_json, report_md, report_html, junit_xml, gradescope_json, prairielearn_json)


def write_all(grade: Grade, out_dir: Path) -> list[Path]:
    """Write every file of :data:`FILES` under ``out_dir``; the paths, in that order.

    grade.json last, each file whole (written beside, then renamed): whoever
    finds a grade.json (a class run, after its grading was killed midway)
    finds every report of that grade beside it.
    """
    paths = [out_dir / name for name in FILES]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    for path, render in reversed(list(zip(paths, RENDERERS, strict=True))):
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(render(grade), encoding="utf-8")
        os.replace(temporary, path)
    return paths
