"""A whole class at once, ``make grade-class``: the parts that decide, not the ones that run.

``make grade-class VARIANT=select SUBMISSIONS=dir [OUT=dir] [JOBS=n]
[CHECKS=file] [FORCE=1]`` grades every learner's submission in ``dir`` with
``make grade``'s command, in parallel, and writes a class view. This module
holds what that takes besides running gradings: which learners there are
(:func:`discover`), which of them to grade on this run and why (:func:`plan`,
from the state file), what each learner's result is (:func:`learner_result`,
under the CHECKS weights of ``socklab.host.grade.weights``), and the class's
figures: ``class.csv`` (:func:`csv_rows`), the performance
:func:`leaderboard`, the checks most of the class failed (:func:`most_failed`)
and the summary ``class_page.index_html`` renders as ``index.html``.

Learners. ``SUBMISSIONS`` holds one entry per learner, a file or a directory
as ``make grade`` takes it; the entry's name (a file's without ``.py``) is
the learner's id. An id is 1 to :data:`MAX_ID_LENGTH` letters (ASCII),
digits, ``.``, ``_`` and ``-``, starting with a letter or a digit, and not
a name ``OUT`` itself uses (:data:`RESERVED`, in any case). Hidden entries
(``.DS_Store``, ``.git``) are not learners and are passed over; any other
name that is no id stops the run before anything is graded, every such name
listed. Each id maps to a lab name (:func:`lab_name`) Docker takes and that
differs for ids that differ only in case. An entry ``make grade`` could not
take (neither a ``.py`` file, a directory with ``main.py``, nor an
executable; or too large) is no error of the class: it is that learner's
result, ``unfit``, with the reason.

The state file ``OUT/class-state.json`` remembers what each learner's last
grading was, so that a rerun into the same ``OUT`` grades only what changed::

    {
      "schema": 1,
      "variant": "select",
      "learners": {
        "alice": {"sha256": "<hex>", "finished": true, "status": "passed",
                  "seconds": 61.6, "omitted": []},
        "Bob":   {"sha256": "<hex>", "finished": false, "status": "",
                  "seconds": null, "omitted": ["performance.throughput"]}
      }
    }

- ``sha256``: ``submission.content_hash`` of the entry when its grading
  started (or what its grade.json says it graded, once it finished);
- ``finished``: ``false`` from the moment its grading starts until it ends,
  so that a class run killed midway is seen as such;
- ``status``: how the grading ended (:data:`STATUSES`: ``passed``,
  ``failed``, ``error``, ``timeout``); ``""`` while unfinished;
- ``seconds``: how long it took, from the orchestration's clock;
- ``omitted``: checks the grading was told to leave out (the performance
  check, when the CHECKS weights did not count it): a rerun whose weights
  count one of them grades the learner again.

Only the orchestration writes it (one process, never the gradings), with
:func:`write_state`, atomically (a temporary file renamed over it), after
each grading starts (:func:`started`) and after each ends (:func:`finished`).

Pure functions throughout; only :func:`discover`, :func:`read_state` and
:func:`write_state` touch files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from socklab.grading import spec
from socklab.host.grade import weights as weighting
from socklab.host.grade.submission import SubmissionError, classify, content_hash

STATE_FILE = "class-state.json"
CSV_FILE = "class.csv"
INDEX_FILE = "index.html"
STATE_SCHEMA = 1
# Names OUT uses for itself: a learner's directory OUT/<id>/ cannot take them.
RESERVED = frozenset({STATE_FILE, STATE_FILE + ".tmp", CSV_FILE, INDEX_FILE})

MAX_ID_LENGTH = 100
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A lab name: lower-case letters, digits and inner dashes (a DNS label, a Docker name).
LAB_NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
LAB_SLUG_LENGTH = 31
LAB_HASH_LENGTH = 8
LAB_NAME_LENGTH = LAB_SLUG_LENGTH + 1 + LAB_HASH_LENGTH

CSV_HEADER: tuple[str, ...] = (
    "learner", "score", "max_score", "percent", *spec.CATEGORIES, "status", "seconds")

# How a grading ended (the state file's status).
STATUSES: tuple[str, ...] = ("passed", "failed", "error", "timeout")
# A learner's status in the class view: those, or not graded (unfit, pending).
CLASS_STATUSES: tuple[str, ...] = (*STATUSES, "unfit", "pending")
# Endings that say nothing of the submission (the grader broke, the class run's own limit):
# a rerun grades the learner again.
RETRY: tuple[str, ...] = ("error", "timeout")
# The grader's command's exit status when it could grade nothing (socklab.host.grade).
NO_GRADING = 2
# Statuses of a check that count as failing it.
FAILING: tuple[str, ...] = ("failed", "timeout")
# A check is among the most failed when at least this share of the graded learners failed it.
MOST_FAILED_SHARE = 0.5


class ClassError(ValueError):
    """The class cannot be graded as given (the message says why and what works)."""


class StateError(ClassError):
    """OUT/class-state.json cannot be read as a class state file."""


# -- learners --------------------------------------------------------------------------------

def id_problem(name: str) -> str | None:
    """Why ``name`` is no learner id, or None when it is one."""
    if not name:
        return "empty"
    if len(name) > MAX_ID_LENGTH:
        return f"{len(name)} characters long; at most {MAX_ID_LENGTH}"
    if not ID_PATTERN.fullmatch(name):
        if not name[0].isascii() or not name[0].isalnum():
            return "starts with something else than a letter (a-z, A-Z) or a digit"
        strange = sorted({c for c in name if not re.fullmatch(r"[A-Za-z0-9._-]", c)})
        return (f"holds {', '.join(repr(c) for c in strange)}: only letters (a-z, A-Z), "
                "digits, '.', '_' and '-'")
    if name.lower() in RESERVED:
        return f"{name!r} is a name of OUT's own files"
    return None


def lab_name(learner: str) -> str:
    """The learner's name for the lab: a Docker name and a DNS label, unique per id.

    The id in lower case, ``.`` and ``_`` as ``-``, cut to
    :data:`LAB_SLUG_LENGTH` characters, then ``-`` and the first
    :data:`LAB_HASH_LENGTH` hex digits of the id's sha256: ``Alice.B`` is
    ``alice-b-…``, and ``alice.b`` gets another hash.
    """
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", learner.lower()))
    slug = slug[:LAB_SLUG_LENGTH].strip("-") or "learner"
    digest = hashlib.sha256(learner.encode()).hexdigest()[:LAB_HASH_LENGTH]
    return f"{slug}-{digest}"


@dataclass(frozen=True, order=True)
class LearnerId:
    """A valid learner id (:func:`id_problem`); ClassError on anything else."""

    value: str

    def __post_init__(self) -> None:
        problem = id_problem(self.value)
        if problem:
            raise ClassError(f"{self.value!r} is no learner id: {problem}")

    @property
    def lab(self) -> str:
        return lab_name(self.value)

    def __str__(self) -> str:
        return self.value


def learner_name(entry: Path) -> str:
    """The id an entry of SUBMISSIONS names: a file's name without ``.py``, else its name."""
    name = entry.name
    if name.endswith(".py") and not entry.is_dir():
        return name[:-3]
    return name


@dataclass(frozen=True)
class Entry:
    """One learner's submission: where it is, what ``make grade`` takes it for, its hash."""

    learner: LearnerId
    path: Path
    kind: str = ""  # python, directory or executable; "" when unfit
    sha256: str = ""  # submission.content_hash; "" when unfit
    problem: str = ""  # why make grade cannot take it; "" when it can

    @property
    def id(self) -> str:
        return self.learner.value


def _entry(learner: LearnerId, path: Path) -> Entry:
    try:
        kind, _ = classify(path)
        return Entry(learner, path, kind, content_hash(path))
    except SubmissionError as error:
        return Entry(learner, path, problem=str(error))
    except OSError as error:
        return Entry(learner, path, problem=f"cannot read {path}: {error.strerror or error}")


def discover(submissions_dir: Path) -> list[Entry]:
    """Every learner of SUBMISSIONS, sorted by id; ClassError lists every name it refuses.

    Refused: a name that is no id (:func:`id_problem`), two entries naming
    the same id (``alice.py`` and ``alice/``), and (never seen, but checked)
    two ids with the same lab name. Hidden entries are passed over. An entry
    ``make grade`` would refuse is returned with its ``problem``.
    """
    directory = Path(submissions_dir)
    if not directory.exists():
        raise ClassError(f"SUBMISSIONS={directory}: no such directory")
    if not directory.is_dir():
        raise ClassError(f"SUBMISSIONS={directory} is not a directory: it holds one file or "
                         "directory per learner, named by the learner's id")
    try:
        children = sorted(directory.iterdir(), key=lambda p: p.name)
    except OSError as error:
        raise ClassError(f"SUBMISSIONS={directory}: cannot list it: "
                         f"{error.strerror or error}") from None
    refused: list[str] = []
    names: dict[str, list[str]] = {}
    for child in children:
        if child.name.startswith("."):
            continue
        learner = learner_name(child)
        problem = id_problem(learner)
        if problem:
            refused.append(f"  {child.name!r}: {problem}")
        else:
            names.setdefault(learner, []).append(child.name)
    for learner, given in names.items():
        if len(given) > 1:
            refused.append(f"  {', '.join(repr(g) for g in given)}: the same learner "
                           f"{learner!r} twice")
    labs: dict[str, list[str]] = {}
    for learner in names:
        labs.setdefault(lab_name(learner), []).append(learner)
    refused += [f"  {', '.join(repr(i) for i in ids)}: the same lab name {lab!r}"
                for lab, ids in labs.items() if len(ids) > 1]
    if refused:
        raise ClassError(
            f"SUBMISSIONS={directory}: {len(refused)} name{'s' if len(refused) > 1 else ''} "
            "cannot be a learner's (an entry's name, a file's without .py, is the "
            "learner's id: letters, digits, '.', '_' and '-', starting with a letter or "
            f"a digit, at most {MAX_ID_LENGTH} characters):\n" + "\n".join(refused))
    if not names:
        raise ClassError(f"SUBMISSIONS={directory} holds no submission: one file or "
                         "directory per learner, named by the learner's id")
    return sorted((_entry(LearnerId(learner), directory / given[0])
                   for learner, given in names.items()), key=lambda e: e.learner)


def default_out(variant: str, submissions_dir: Path | str) -> Path:
    """``results/class-<variant>-<dir name>``: the same for every run on the same class."""
    name = Path(os.path.abspath(submissions_dir)).name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "submissions"
    return Path("results") / f"class-{variant}-{slug}"


# -- the state file --------------------------------------------------------------------------

@dataclass(frozen=True)
class LearnerState:
    """What the state file says of one learner's last grading."""

    sha256: str
    finished: bool = False
    status: str = ""
    seconds: float | None = None
    omitted: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClassState:
    """The state file, and which learners have a grade.json in OUT (``results``)."""

    variant: str = ""
    learners: Mapping[str, LearnerState] = field(default_factory=dict)
    results: frozenset[str] = frozenset()


def state_json(state: ClassState) -> str:
    """The state file's text."""
    learners = {learner: {"sha256": s.sha256, "finished": s.finished, "status": s.status,
                          "seconds": s.seconds, "omitted": list(s.omitted)}
                for learner, s in sorted(state.learners.items())}
    return json.dumps({"schema": STATE_SCHEMA, "variant": state.variant, "learners": learners},
                      indent=2, ensure_ascii=False) + "\n"


def parse_state(text: str, source: str = STATE_FILE,
                results: Iterable[str] = ()) -> ClassState:
    """A state file's text as a ClassState; StateError when it is not one."""
    def bad(why: str) -> StateError:
        return StateError(f"{source} is not a class state file ({why}): remove it, or grade "
                          "the whole class again with FORCE=1")

    try:
        data = json.loads(text)
    except ValueError as error:
        raise bad(f"not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("schema") != STATE_SCHEMA:
        raise bad(f"no \"schema\": {STATE_SCHEMA}")
    if not isinstance(data.get("variant"), str) or not isinstance(data.get("learners"), dict):
        raise bad("no variant or no learners")
    learners: dict[str, LearnerState] = {}
    for learner, item in data["learners"].items():
        try:
            seconds = item["seconds"]
            if seconds is not None and (isinstance(seconds, bool)
                                        or not isinstance(seconds, int | float)):
                raise TypeError(seconds)
            omitted = item.get("omitted", [])
            if (not isinstance(item["sha256"], str) or not isinstance(item["finished"], bool)
                    or item["status"] not in (*STATUSES, "")
                    or not all(isinstance(o, str) for o in omitted)):
                raise TypeError(item)
        except (KeyError, TypeError):
            raise bad(f"learner {learner!r}: sha256, finished, status, seconds") from None
        learners[learner] = LearnerState(item["sha256"], item["finished"], item["status"],
                                         seconds, tuple(omitted))
    return ClassState(data["variant"], MappingProxyType(learners), frozenset(results))


def read_state(out_dir: Path) -> ClassState:
    """OUT's state: its state file (none: an empty state) and which learners have a result.

    A learner has a result when ``OUT/<id>/grade.json`` is a file; only ids
    of the state file are looked for (a learner it does not name is graded
    anyway), and only valid ones.
    """
    path = Path(out_dir) / STATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ClassState()
    except (OSError, UnicodeDecodeError) as error:
        raise StateError(f"{path}: cannot read it ({error}): remove it, or FORCE=1") from None
    state = parse_state(text, str(path))
    present = frozenset(learner for learner in state.learners
                        if id_problem(learner) is None
                        and (Path(out_dir) / learner / "grade.json").is_file())
    return replace(state, results=present)


def write_state(out_dir: Path, state: ClassState) -> Path:
    """Write OUT/class-state.json atomically (a reader sees the old file or the new one)."""
    path = Path(out_dir) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(STATE_FILE + ".tmp")
    temporary.write_text(state_json(state), encoding="utf-8")
    os.replace(temporary, path)
    return path


def started(state: ClassState, variant: str, entry: Entry,
            omitted: Iterable[str] = ()) -> ClassState:
    """The state once ``entry``'s grading has started (the state of another variant is
    dropped: its results are no longer the class's)."""
    learners = dict(state.learners) if state.variant == variant else {}
    learners[entry.id] = LearnerState(entry.sha256, False, "", None, tuple(omitted))
    results = state.results - {entry.id} if state.variant == variant else frozenset()
    return ClassState(variant, MappingProxyType(learners), results)


def finished(state: ClassState, learner: str, status: str, seconds: float,
             sha256: str | None = None) -> ClassState:
    """The state once ``learner``'s grading has ended with ``status`` (one of STATUSES).

    ``sha256``: what the grading says it graded (grade.json's
    ``submission.sha256``), when it differs from the hash at the start.
    """
    if status not in STATUSES:
        raise ValueError(f"status {status!r}: one of {', '.join(STATUSES)}")
    if learner not in state.learners:
        raise ClassError(f"{learner!r} finished, but its grading never started")
    before = state.learners[learner]
    learners = {**state.learners, learner: replace(
        before, sha256=sha256 or before.sha256, finished=True, status=status,
        seconds=round(seconds, 1))}
    return replace(state, learners=MappingProxyType(learners))


# -- what to grade ---------------------------------------------------------------------------

FORCED = "FORCE=1"
NEW = "new: not graded before"
UNCHANGED = "unchanged since its last grading"
UNFINISHED = "unfinished: its last grading did not end"


@dataclass(frozen=True)
class Decision:
    """One learner's part in this run, and why."""

    entry: Entry
    reason: str


@dataclass(frozen=True)
class Plan:
    """This run: who is graded, who keeps the last result, who cannot be graded."""

    grade: tuple[Decision, ...]
    keep: tuple[Decision, ...]
    unfit: tuple[Decision, ...]
    gone: tuple[str, ...]  # learners of the state file no longer in SUBMISSIONS


def _reason(entry: Entry, last: LearnerState | None, state: ClassState, variant: str,
            force: bool, counted: frozenset[str]) -> str | None:
    """Why ``entry`` is graded on this run, or None when its last result stands."""
    if force:
        return FORCED
    if state.variant and state.variant != variant:
        return f"another variant: OUT held {state.variant}'s results"
    if last is None:
        return NEW
    if last.sha256 != entry.sha256:
        return "changed: its submission is not what was graded"
    if not last.finished:
        return UNFINISHED
    if last.status in RETRY:
        return f"retried: its last grading ended in {last.status}"
    if entry.id not in state.results:
        return f"no result: {entry.id}/grade.json is missing"
    now_counted = sorted(set(last.omitted) & counted)
    if now_counted:
        return f"checks: its last grading left out {', '.join(now_counted)}, which now count"
    return None


def plan(entries: Sequence[Entry], state: ClassState, force: bool = False, *,
         variant: str, counted: Iterable[str] = ()) -> Plan:
    """Which learners to grade on this run and why; the rest keep their last result.

    A learner is graded when FORCE is given, when the state is of another
    variant, when it has no state or its submission's hash changed, when its
    last grading did not finish or ended in ``error`` or ``timeout``, when its
    grade.json is gone, or when a check in ``counted`` (the ids the weights
    count) was left out of its last grading. An unfit entry is never graded.
    """
    wanted = frozenset(counted)
    grade, keep, unfit = [], [], []
    for entry in entries:
        if entry.problem:
            unfit.append(Decision(entry, entry.problem))
            continue
        last = state.learners.get(entry.id)
        reason = _reason(entry, last, state, variant, force, wanted)
        if reason is None:
            keep.append(Decision(entry, UNCHANGED))
        else:
            grade.append(Decision(entry, reason))
    present = {entry.id for entry in entries}
    gone = tuple(sorted(learner for learner in state.learners if learner not in present))
    return Plan(tuple(grade), tuple(keep), tuple(unfit), gone)


# -- results ---------------------------------------------------------------------------------

def run_status(exit_code: int | None, grade: Mapping[str, Any] | None, *,
               timed_out: bool = False) -> str:
    """How one grading ended, from the grader command's exit status and its grade.json.

    ``timeout``: the class run's own limit stopped it; ``error``: no
    grade.json, a grade that says it was not gradable, or the grader's
    "nothing graded" exit status (2; the grade is then partial); else the
    grade's verdict, ``passed`` or ``failed``.
    """
    if timed_out:
        return "timeout"
    if grade is None or exit_code == NO_GRADING or not grade.get("gradable", True):
        return "error"
    return "passed" if grade.get("passed") else "failed"


def category_points(grade: Mapping[str, Any]) -> dict[str, float]:
    """Points earned per category (every category of spec.CATEGORIES, 0 when none)."""
    totals = dict.fromkeys(spec.CATEGORIES, 0.0)
    for check in grade["checks"]:
        totals[check["category"]] = round(totals.get(check["category"], 0.0)
                                          + float(check["points"]), 2)
    return totals


def category_max(grade: Mapping[str, Any]) -> dict[str, float]:
    """Points each category is worth in ``grade`` (0 for a category it has no check of)."""
    totals = dict.fromkeys(spec.CATEGORIES, 0.0)
    for check in grade["checks"]:
        totals[check["category"]] = round(totals.get(check["category"], 0.0)
                                          + float(check["max_points"]), 2)
    return totals


@dataclass(frozen=True)
class LearnerResult:
    """One learner's line of the class view: status, the (re-scored) grade if any."""

    learner: str
    status: str  # one of CLASS_STATUSES
    grade: Mapping[str, Any] | None = None
    seconds: float | None = None
    note: str = ""  # why, when the status is neither passed nor failed

    @property
    def has_report(self) -> bool:
        """Whether OUT/<learner>/report.html belongs to this result."""
        return self.grade is not None

    @property
    def score(self) -> float | None:
        return None if self.grade is None else float(self.grade["score"])

    @property
    def max_score(self) -> float | None:
        return None if self.grade is None else float(self.grade["max_score"])

    @property
    def percent(self) -> float | None:
        if self.grade is None or not self.grade["max_score"]:
            return None
        return round(100.0 * float(self.grade["score"]) / float(self.grade["max_score"]), 1)

    @property
    def categories(self) -> dict[str, float]:
        return category_points(self.grade) if self.grade is not None else {}


def learner_result(entry: Entry, grade: Mapping[str, Any] | None, last: LearnerState | None,
                   weights: weighting.Weights) -> LearnerResult:
    """The learner's result from its grade.json (None: none) and its state, under ``weights``.

    A grade whose ``submission.sha256`` is not the entry's is not this
    submission's (a grading stopped before it wrote a new one) and is set
    aside. A finished grading that ended in ``error`` or ``timeout`` keeps
    that status, with what grade there is; no grade and no such ending is
    ``pending`` (the next run grades it).
    """
    if entry.problem:
        return LearnerResult(entry.id, "unfit", note=entry.problem)
    if grade is not None and (grade.get("submission") or {}).get("sha256") != entry.sha256:
        grade = None
    ended = last.status if last is not None and last.finished else ""
    seconds = last.seconds if last is not None else None
    if grade is None:
        if ended in RETRY:
            return LearnerResult(entry.id, ended, None, seconds,
                                 note=f"its grading ended in {ended}, without a result")
        return LearnerResult(entry.id, "pending", None, seconds,
                             note="not graded yet: the next run grades it")
    try:
        scored = weighting.rescore(grade, weights)
    except (weighting.WeightsError, KeyError, TypeError) as error:
        return LearnerResult(entry.id, "error", None, seconds,
                             note=f"its grade.json cannot be scored: {error}")
    seconds = (grade.get("timings") or {}).get("seconds", seconds)
    if ended in RETRY:
        return LearnerResult(entry.id, ended, scored, seconds,
                             note=f"its grading ended in {ended}: the result is partial")
    return LearnerResult(entry.id, run_status(None, scored), scored, seconds)


# -- class.csv -------------------------------------------------------------------------------

def _number(value: float | None) -> str:
    if value is None:
        return ""
    text = f"{float(value):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _text_cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: never a formula (=, +, -, @ first)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_rows(results: Sequence[LearnerResult]) -> str:
    """class.csv: CSV_HEADER, then one row per result in the order given.

    Numbers as ``87`` or ``1.5``; ``percent`` with one decimal. A category
    column is the points earned in it, empty when the learner's grade has no
    check of it; a learner without a grade has only learner, status and
    seconds. Quoted where CSV needs it; lines end in ``\\n``.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for result in results:
        grade = result.grade
        worth = category_max(grade) if grade is not None else {}
        earned = result.categories
        writer.writerow([
            _text_cell(result.learner), _number(result.score), _number(result.max_score),
            "" if result.percent is None else f"{result.percent:.1f}",
            *(_number(earned[c]) if worth.get(c) else "" for c in spec.CATEGORIES),
            _text_cell(result.status), _number(result.seconds)])
    return out.getvalue()


# -- the class's figures ---------------------------------------------------------------------

@dataclass(frozen=True)
class Standing:
    """One line of the performance leaderboard."""

    learner: str
    ratio: float
    submission: float
    reference: float
    unit: str


def leaderboard(results: Sequence[LearnerResult]) -> list[Standing]:
    """The learners whose performance was measured and counted, highest ratio first.

    A learner is on it when its grade has a performance figure and its
    counted performance check passed (one that met errors of the load
    generator measured a wrong server). Ties: by id.
    """
    board = []
    for result in results:
        grade = result.grade
        figure = (grade or {}).get("performance")
        if grade is None or not figure:
            continue
        check = next((c for c in grade["checks"] if c["id"] == weighting.PERFORMANCE), None)
        if check is None or check["status"] != "passed":
            continue
        board.append(Standing(result.learner, float(figure["ratio"]),
                              float(figure.get("submission", 0.0)),
                              float(figure.get("reference", 0.0)), str(figure.get("unit", ""))))
    return sorted(board, key=lambda s: (-s.ratio, s.learner))


@dataclass(frozen=True)
class CheckFailures:
    """How many of the graded learners failed one check, and what to teach about it."""

    id: str
    title: str
    hint: str
    page: str
    failed: tuple[str, ...]  # the learners who failed it (failed or timeout)
    graded: int  # the learners graded on it

    @property
    def share(self) -> float:
        return len(self.failed) / self.graded if self.graded else 0.0


def check_failures(results: Sequence[LearnerResult]) -> list[CheckFailures]:
    """Every counted check some graded learner failed, the most failed first.

    Graded learners are those whose status is ``passed`` or ``failed`` (a
    partial grade of an ``error`` says little of the submission). Ties keep
    the order the checks run in. Title, hint and page are the spec's (a
    check it does not know: the first grade's).
    """
    graded = [(r.learner, r.grade) for r in results
              if r.grade is not None and r.status in ("passed", "failed")]
    order: dict[str, Mapping[str, Any]] = {}
    failed: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for learner, grade in graded:
        for check in grade["checks"]:
            order.setdefault(check["id"], {**check, "variant": grade.get("variant", "")})
            counts[check["id"]] = counts.get(check["id"], 0) + 1
            if check["status"] in FAILING:
                failed.setdefault(check["id"], []).append(learner)
    rows = []
    for check_id, check in order.items():
        if check_id not in failed:
            continue
        title, hint, page = _teaching(str(check.get("variant", "")), check)
        rows.append(CheckFailures(check_id, title, hint, page, tuple(failed[check_id]),
                                  counts[check_id]))
    return sorted(rows, key=lambda row: -len(row.failed))


def _teaching(variant: str, check: Mapping[str, Any]) -> tuple[str, str, str]:
    """Title, hint and page of a check: the spec's, else what the grade says."""
    known = {c.id: c for c in spec.SPECS.get(variant, ())}
    if check["id"] in known:
        found = known[check["id"]]
        return found.title, found.hint, spec.PAGES[found.page]
    return str(check.get("title", "")), str(check.get("hint", "")), str(check.get("page", ""))


def most_failed(failures: Sequence[CheckFailures],
                share: float = MOST_FAILED_SHARE) -> list[CheckFailures]:
    """The checks at least ``share`` of the graded learners failed: what to teach next."""
    return [row for row in failures if row.graded and len(row.failed) >= share * row.graded]


@dataclass(frozen=True)
class ClassSummary:
    """Everything index.html shows, computed once."""

    variant: str
    name: str  # the class: SUBMISSIONS's directory name
    results: tuple[LearnerResult, ...]
    category_max: Mapping[str, float]  # the points of each category under the weights
    max_score: float
    leaderboard: tuple[Standing, ...]
    failures: tuple[CheckFailures, ...]
    most_failed: tuple[CheckFailures, ...]
    weights_source: str = ""  # the CHECKS file, "" for the spec's points
    excluded: tuple[str, ...] = ()  # checks of weight 0
    generated: str = ""  # when, as the caller writes it (UTC, ISO 8601)

    def counts(self) -> dict[str, int]:
        """Learners per status, every status of CLASS_STATUSES listed."""
        totals = dict.fromkeys(CLASS_STATUSES, 0)
        for result in self.results:
            totals[result.status] = totals.get(result.status, 0) + 1
        return totals

    @property
    def median_percent(self) -> float | None:
        shares = [r.percent for r in self.results if r.percent is not None
                  and r.status in ("passed", "failed")]
        return round(statistics.median(shares), 1) if shares else None


def summarize(variant: str, name: str, results: Iterable[LearnerResult],
              weights: weighting.Weights | None = None, generated: str = "") -> ClassSummary:
    """The class view of ``results`` (sorted by id, case-insensitively, then as given)."""
    weights = weights or weighting.default(variant)
    ordered = tuple(sorted(results, key=lambda r: (r.learner.lower(), r.learner)))
    failures = check_failures(ordered)
    return ClassSummary(
        variant=variant, name=name, results=ordered,
        category_max=MappingProxyType({k: float(v) for k, v in weights.category_max().items()}),
        max_score=float(weights.max_score), leaderboard=tuple(leaderboard(ordered)),
        failures=tuple(failures), most_failed=tuple(most_failed(failures)),
        weights_source=weights.source, excluded=weights.excluded, generated=generated)
