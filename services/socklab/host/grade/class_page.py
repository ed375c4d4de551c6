"""``OUT/index.html`` of ``make grade-class``: the whole class on one page.

One self-contained page (CSS and a few lines of JavaScript inline, nothing
loaded from anywhere: it works opened from ``file://`` and its Content
Security Policy forbids anything else): every learner with score, percent,
a bar per category and status, sortable by a click on a column's header,
each linked to its own ``<learner>/report.html``; the performance
leaderboard, highest ratio first; and what to teach next: the checks at
least half the graded learners failed, with their hints, then every check
someone failed.

Learner ids, notes, titles and hints come from files a learner or the
grader wrote: every one is escaped, and a link is URL-quoted. The script
holds no data of the page: it sorts the rows by their cells' ``data-v``.
Pure: :func:`index_html` takes a ``classroom.ClassSummary``.
"""

from __future__ import annotations

import html
from urllib.parse import quote

from socklab.grading import spec
from socklab.host.grade.classroom import (
    MOST_FAILED_SHARE,
    CheckFailures,
    ClassSummary,
    LearnerResult,
)

CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src 'none'; base-uri 'none'; form-action 'none'")

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 80rem; margin: 2rem auto;
       padding: 0 1rem; color: #1f2328; background: #fff; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; } th, td { padding: .25rem .6rem; text-align: left;
       border-bottom: 1px solid #d0d7de; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th button { font: inherit; font-weight: 600; border: 0; background: none; padding: 0;
            cursor: pointer; color: inherit; }
th[aria-sort=ascending] button::after { content: " \\25B2"; }
th[aria-sort=descending] button::after { content: " \\25BC"; }
.bar { display: inline-block; width: 5rem; height: .7rem; background: #eaeef2;
       border-radius: .2rem; overflow: hidden; vertical-align: middle; }
.bar span { display: block; height: 100%; background: #2da44e; }
.status { font-weight: 600; padding: 0 .4rem; border-radius: .3rem; }
.passed { color: #116329; background: #dafbe1; }
.failed { color: #82071e; background: #ffebe9; }
.timeout, .error { color: #7d4e00; background: #fff8c5; }
.unfit, .pending { color: #424a53; background: #eaeef2; }
.note { color: #59636e; font-size: .9em; }
.teach { border-left: .3rem solid #cf222e; padding-left: 1rem; margin: 1.5rem 0; }
code { background: #f6f8fa; padding: 0 .2rem; }
"""

# Sorts a table.sortable by the data-v of the clicked column's cells; empty cells last
# whichever the direction. The order is total (a sort gives the same rows whatever order
# they were in): numbers by value before text, text in natural order ("user2" before
# "user10"), ties of the collation by code unit. compareCells is pure (unit tests run it
# under node and in chromium); the rest only wires the headers' buttons.
SCRIPT = """
function compareCells(x, y, ascending) {
  x = x == null ? "" : x;
  y = y == null ? "" : y;
  if (x === y) return 0;
  if (x === "") return 1;
  if (y === "") return -1;
  var nx = Number(x), ny = Number(y), order;
  if (!isNaN(nx) && !isNaN(ny)) order = nx - ny;
  else if (!isNaN(nx) || !isNaN(ny)) order = isNaN(nx) ? 1 : -1;
  else order = x.localeCompare(y, "en", {numeric: true}) || (x < y ? -1 : 1);
  return ascending ? order : -order;
}
if (typeof document !== "undefined") {
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, column) {
      var button = th.querySelector("button");
      if (!button) return;
      button.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          return compareCells(a.cells[column].getAttribute("data-v"),
                              b.cells[column].getAttribute("data-v"), ascending);
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def number(value: float | None) -> str:
    """``87``, ``1.5``: at most two decimals; ``–`` for none."""
    if value is None:
        return "–"
    text = f"{float(value):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _sort_value(value: float | None) -> str:
    return "" if value is None else repr(round(float(value), 4))


def report_link(learner: str) -> str:
    """The relative address of a learner's report.html (the id URL-quoted)."""
    return f"{quote(learner, safe='')}/report.html"


def _learner_cell(result: LearnerResult) -> str:
    name = _e(result.learner)
    shown = (f'<a href="{_e(report_link(result.learner))}">{name}</a>' if result.has_report
             else name)
    return f'<td data-v="{_e(result.learner.lower())}">{shown}</td>'


def _bar(earned: float | None, worth: float, label: str) -> str:
    if earned is None:
        return '<td data-v=""></td>'
    width = 0.0 if not worth else max(0.0, min(100.0, 100.0 * earned / worth))
    title = f"{label}: {number(earned)} / {number(worth)}"
    return (f'<td class="n" data-v="{_sort_value(earned)}" title="{_e(title)}">'
            f'<span class="bar"><span style="width:{width:.1f}%"></span></span> '
            f"{_e(number(earned))}</td>")


def _status(result: LearnerResult) -> str:
    note = f' <span class="note">{_e(result.note)}</span>' if result.note else ""
    return (f'<td data-v="{_e(result.status)}"><span class="status {_e(result.status)}">'
            f"{_e(result.status)}</span>{note}</td>")


def learners_table(summary: ClassSummary) -> list[str]:
    categories = [c for c in spec.CATEGORIES if summary.category_max.get(c)]
    heads = ["learner", "score", "%", *categories, "status", "seconds"]
    out = ['<table class="sortable" id="learners">', "<thead><tr>"]
    out += [f'<th><button type="button">{_e(head)}</button></th>' for head in heads]
    out += ["</tr></thead>", "<tbody>"]
    for result in summary.results:
        earned = result.categories
        cells = [_learner_cell(result),
                 f'<td class="n" data-v="{_sort_value(result.score)}">'
                 f"{_e(number(result.score))} / {_e(number(result.max_score))}</td>"
                 if result.score is not None else '<td data-v="">–</td>',
                 f'<td class="n" data-v="{_sort_value(result.percent)}">'
                 f"{_e(number(result.percent))}</td>"]
        cells += [_bar(earned.get(c) if result.grade is not None else None,
                       summary.category_max[c], c) for c in categories]
        cells += [_status(result),
                  f'<td class="n" data-v="{_sort_value(result.seconds)}">'
                  f"{_e(number(result.seconds))}</td>"]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out += ["</tbody>", "</table>"]
    return out


def leaderboard_part(summary: ClassSummary) -> list[str]:
    out = ["<h2>Performance leaderboard</h2>"]
    if not summary.leaderboard:
        return [*out, '<p class="note">No performance figure: none was measured, or none '
                "counted.</p>"]
    out += ['<p class="note">The ratio is the server\'s rate over the lab\'s own server\'s, '
            "measured side by side (echo variants: in one run, the two servers taking turns; "
            "the others: the median of three rounds).</p>",
            '<table id="leaderboard">', "<thead><tr><th>#</th><th>learner</th><th>ratio</th>"
            "<th>rate</th><th>the lab's own server</th></tr></thead>", "<tbody>"]
    for rank, standing in enumerate(summary.leaderboard, 1):
        out.append(f'<tr><td class="n">{rank}</td><td>{_e(standing.learner)}</td>'
                   f'<td class="n">{standing.ratio:.2f}</td>'
                   f'<td class="n">{standing.submission:,.0f} {_e(standing.unit)}</td>'
                   f'<td class="n">{standing.reference:,.0f} {_e(standing.unit)}</td></tr>')
    return [*out, "</tbody>", "</table>"]


def _teach(row: CheckFailures) -> list[str]:
    return ['<section class="teach">',
            f"<h3><code>{_e(row.id)}</code>: failed by {len(row.failed)} of {row.graded} "
            f"({row.share:.0%})</h3>",
            f"<p>The check: {_e(row.title)}.</p>",
            f"<p>Hint: {_e(row.hint)}</p>",
            f"<p>Read: <code>{_e(row.page)}</code></p>",
            "</section>"]


def teaching_part(summary: ClassSummary) -> list[str]:
    out = ["<h2>What to teach next</h2>"]
    graded = sum(1 for r in summary.results if r.status in ("passed", "failed"))
    if not graded:
        return [*out, '<p class="note">No learner was graded yet.</p>']
    if summary.most_failed:
        out.append(f'<p class="note">The checks at least {MOST_FAILED_SHARE:.0%} of the '
                   f"{graded} graded learners failed, the most failed first.</p>")
        for row in summary.most_failed:
            out += _teach(row)
    else:
        out.append(f'<p class="note">No check was failed by {MOST_FAILED_SHARE:.0%} or more '
                   f"of the {graded} graded learners.</p>")
    if summary.failures:
        out += ["<h3>Every check someone failed</h3>", '<table id="failures">',
                "<thead><tr><th>check</th><th>failed</th><th>learners</th></tr></thead>",
                "<tbody>"]
        out += [f"<tr><td><code>{_e(row.id)}</code></td>"
                f'<td class="n">{len(row.failed)} of {row.graded}</td>'
                f"<td>{_e(', '.join(row.failed))}</td></tr>" for row in summary.failures]
        out += ["</tbody>", "</table>"]
    return out


def overview(summary: ClassSummary) -> str:
    counts = summary.counts()
    parts = [f"{n} {status}" for status, n in counts.items() if n]
    median = summary.median_percent
    count = len(summary.results)
    sentence = (f"{count} learner{'' if count == 1 else 's'}: {', '.join(parts) or 'none'}. "
                + (f"Median score of the graded: {number(median)} %. " if median is not None
                   else ""))
    points = (f"Points from {summary.weights_source}" if summary.weights_source
              else "Points of the spec (docs/grading.md)")
    points += f", {number(summary.max_score)} in all"
    if summary.excluded:
        points += f"; not counted: {', '.join(summary.excluded)}"
    return f"<p>{_e(sentence)}{_e(points)}.</p>"


def index_html(summary: ClassSummary) -> str:
    """index.html of a class: learners, leaderboard, what to teach next."""
    title = f"socklab class: {summary.name} ({summary.variant})"
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_e(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
           f"<h1>{_e(title)}</h1>", overview(summary),
           '<p class="note">Click a column\'s header to sort by it; a learner\'s name opens '
           "its report.</p>",
           "<h2>Learners</h2>", *learners_table(summary),
           *leaderboard_part(summary), *teaching_part(summary)]
    if summary.generated:
        out += ["<hr>", f'<p class="note">Written {_e(summary.generated)}.</p>']
    out += [f"<script>{SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(out) + "\n"
