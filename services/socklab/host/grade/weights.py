"""An instructor's choice of which checks count and what each is worth: ``CHECKS=file``.

``make grade`` and ``make grade-class`` score every check of a variant with
the points of ``socklab.grading.spec`` by default. ``CHECKS=file`` names a
TOML file that changes that for one course: a check can be worth other
points, or nothing at all (weight 0). A check of weight 0 does not count: it
adds nothing to ``max_score``, earns nothing, and its failure does not fail
the run; it is left out of the re-scored grade (listed under
``weights.excluded``). Weights are the points a check is worth, not factors.

The file (every part optional; an empty file is the spec's points)::

    # The variant the file is for: make grade refuses it for another one.
    variant = "exec"

    # Only these checks count; every other one weighs 0. Ids, or "<category>.*".
    only = ["conformance.handshake", "conformance.big-output", "robustness.*",
            "security.*", "resources.*"]

    # These checks do not count (weight 0). Ids, or "<category>.*".
    exclude = ["performance.throughput"]

    # Points per check, a number >= 0 (integer or decimal). Ids, or "<category>.*"
    # for every check of a category; an id wins over its category. A check not
    # listed keeps the spec's points.
    [checks]
    "conformance.handshake" = 12
    "robustness.*" = 4

``variant``, ``only`` and ``exclude`` come before ``[checks]`` (TOML puts a
key written after a table header into that table). How the weights are
resolved: the spec's points; then the ``"<category>.*"`` entries of
``[checks]``; then its ids; then ``only`` sets every check it does not name
to 0; then ``exclude`` sets those it names to 0. A check given a positive
weight by its id in ``[checks]`` that ``only`` or ``exclude`` then sets to 0
is an error (the file contradicts itself), as is any id or category the
variant does not have (``spec.checks(variant)``: the error names every
unknown one and lists the valid ids), a weight that is negative, not a
number or not finite, and a file under which nothing counts.

The grader's checks run whatever the weights say, but the performance check,
which takes half of a correct server's grading time, runs only when it
counts (:attr:`Weights.measure_performance`; :attr:`Weights.left_out`
names it otherwise, and the grader gets ``--no-performance``).
:func:`rescore` turns a grade dict (grade.json) into the grade under the
weights: points, ``max_score``, ``score``, ``passed``, and a ``weights``
block saying what changed and holding the grader's own scores, so that a
re-scored grade can be re-scored under other weights (:func:`original`
gives the grader's back; :func:`scored_with` says whether a grade already
holds the scores of some weights, i.e. whether its reports are current).
The block, in grade.json::

    "weights": {"source": "course.toml", "sha256": "<Weights.fingerprint>",
                "excluded": ["performance.throughput"],
                "changed": {"conformance.handshake": [6, 12]},
                "original": {"score": 87, "max_score": 96, "passed": false,
                             "points": {"<id>": [<points>, <max_points>], ...},
                             "excluded_checks": [[<index>, {<the check>}], ...]}}

Pure but :func:`load`, which reads the file: :func:`parse` takes its text.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from socklab.grading import spec

PERFORMANCE = "performance.throughput"
TOP_LEVEL = ("variant", "only", "exclude", "checks")
WILDCARD = ".*"


class WeightsError(ValueError):
    """The CHECKS file cannot be used as given (the message says why and what is valid)."""


Number = int | float


@dataclass(frozen=True)
class Weights:
    """Every check of ``variant`` with the points it is worth (0: it does not count)."""

    variant: str
    points: Mapping[str, Number]
    source: str = ""  # where the weights came from: a file name, or "" for the spec's points

    @property
    def counted(self) -> tuple[str, ...]:
        """The ids that count (weight above 0), in the order the checks run."""
        return tuple(check_id for check_id, weight in self.points.items() if weight > 0)

    @property
    def excluded(self) -> tuple[str, ...]:
        """The ids of weight 0, in the order the checks run."""
        return tuple(check_id for check_id, weight in self.points.items() if weight == 0)

    @property
    def max_score(self) -> Number:
        return _tidy(sum(self.points.values()))

    @property
    def measure_performance(self) -> bool:
        """Whether the performance check counts (else the grader can skip it)."""
        return self.points.get(PERFORMANCE, 0) > 0

    @property
    def left_out(self) -> tuple[str, ...]:
        """The checks a grading under these weights need not run: the performance check
        when it does not count (``--no-performance``); the others always run."""
        return () if self.measure_performance or PERFORMANCE not in self.points else (
            PERFORMANCE,)

    def category_max(self) -> dict[str, Number]:
        """The points each category is worth, every category of spec.CATEGORIES listed."""
        totals: dict[str, Number] = dict.fromkeys(spec.CATEGORIES, 0)
        for check_id, weight in self.points.items():
            category = check_id.split(".", 1)[0]
            totals[category] = _tidy(totals[category] + weight)
        return totals

    @property
    def fingerprint(self) -> str:
        """sha256 of the weights (not of the file's wording): equal weights, equal prints."""
        canonical = json.dumps({"variant": self.variant, "points": dict(self.points)},
                               sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def changed(self) -> dict[str, tuple[Number, Number]]:
        """{id: (spec's points, weight)} of every check whose points differ from the spec's."""
        return {c.id: (c.points, self.points[c.id]) for c in spec.checks(self.variant)
                if self.points[c.id] != c.points}


def _tidy(value: float) -> Number:
    """A whole number as an int, anything else rounded to two decimals."""
    rounded = round(float(value), 2)
    return int(rounded) if rounded.is_integer() else rounded


def default(variant: str) -> Weights:
    """The spec's points for ``variant`` (KeyError names the gradable variants)."""
    return Weights(variant, MappingProxyType({c.id: c.points for c in spec.checks(variant)}))


def _patterns(variant: str) -> dict[str, tuple[str, ...]]:
    """Every name a CHECKS file may use for ``variant``: ids and "<category>.*"."""
    ids = [c.id for c in spec.checks(variant)]
    names = {check_id: (check_id,) for check_id in ids}
    for category in spec.CATEGORIES:
        members = tuple(i for i in ids if i.split(".", 1)[0] == category)
        if members:
            names[category + WILDCARD] = members
    return names


def _unknown(where: str, names: Iterable[str], valid: Mapping[str, tuple[str, ...]],
             variant: str) -> str | None:
    unknown = [name for name in names if name not in valid]
    if not unknown:
        return None
    return f"{where}: {variant} has no check {', '.join(repr(name) for name in unknown)}"


def _valid_names(valid: Mapping[str, tuple[str, ...]], variant: str) -> str:
    """The line that ends an error about unknown names: what the variant has."""
    ids = [name for name in valid if not name.endswith(WILDCARD)]
    groups = [name for name in valid if name.endswith(WILDCARD)]
    return (f"  {variant}'s checks: {', '.join(ids)}; and by category: {', '.join(groups)}")


def _weight(name: str, value: object) -> Number | str:
    """The weight, or why it is none."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{name!r} = {value!r}: a weight is a number of points (e.g. 5 or 2.5)"
    if not math.isfinite(value):
        return f"{name!r} = {value!r}: a weight is a finite number"
    if value < 0:
        return f"{name!r} = {value!r}: a weight is 0 (does not count) or more"
    return _tidy(value)


def _name_list(key: str, value: object) -> list[str] | str:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return (f"{key} = {value!r}: a list of check ids in quotes, e.g. "
                f"{key} = [\"performance.throughput\", \"robustness.*\"]")
    return value


def parse(text: str, variant: str, source: str = "CHECKS") -> Weights:
    """The weights a CHECKS file's ``text`` gives ``variant``; WeightsError says what is wrong.

    Every problem of the file is reported at once, one per line, each starting
    with ``source`` (the file's name as the instructor gave it).
    """
    try:
        checks = spec.checks(variant)
    except KeyError as error:
        raise WeightsError(f"{source}: {error.args[0]}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise WeightsError(f"{source}: not valid TOML: {error}") from None
    problems: list[str] = []
    valid = _patterns(variant)

    strange = [key for key in data if key not in TOP_LEVEL]
    if strange:
        problems.append(f"{source}: unknown key {', '.join(repr(k) for k in strange)}; a CHECKS "
                        f"file has {', '.join(TOP_LEVEL[:3])} and a [checks] table")
    wanted = data.get("variant", variant)
    if wanted != variant:
        problems.append(f"{source}: written for variant {wanted!r}, not {variant!r}")

    named_unknown = False
    lists: dict[str, list[str] | None] = {}
    for key in ("only", "exclude"):
        if key not in data:
            lists[key] = None
            continue
        names = _name_list(key, data[key])
        if isinstance(names, str):
            problems.append(f"{source}: {names}")
            lists[key] = None
        else:
            lists[key] = names
            unknown = _unknown(f"{source}: {key}", names, valid, variant)
            if unknown:
                problems.append(unknown)
                named_unknown = True

    table = data.get("checks", {})
    if not isinstance(table, dict):
        problems.append(f"{source}: checks = {table!r}: [checks] is a table, one "
                        "\"<id>\" = <points> per line")
        table = {}
    misplaced = [key for key in table if key in ("only", "exclude", "variant")]
    if misplaced:
        problems.append(f"{source}: {', '.join(misplaced)} inside [checks]: write "
                        f"{' and '.join(misplaced)} before the [checks] line")
    table = {k: v for k, v in table.items() if k not in misplaced}
    unknown = _unknown(f"{source}: [checks]", table, valid, variant)
    if unknown:
        problems.append(unknown)
        named_unknown = True
    weights: dict[str, Number] = {}
    for name, value in table.items():
        weight = _weight(name, value)
        if isinstance(weight, str):
            problems.append(f"{source}: [checks] {weight}")
        elif name in valid:
            weights[name] = weight
    if named_unknown:
        problems.append(_valid_names(valid, variant))
    if problems:
        raise WeightsError("\n".join(problems))

    points: dict[str, Number] = {c.id: c.points for c in checks}
    for name, weight in weights.items():  # categories first, ids over them
        if name.endswith(WILDCARD):
            points.update(dict.fromkeys(valid[name], weight))
    for name, weight in weights.items():
        if not name.endswith(WILDCARD):
            points[name] = weight
    named_positive = {name for name, weight in weights.items()
                      if weight > 0 and not name.endswith(WILDCARD)}
    zeroed: dict[str, str] = {}
    if lists["only"] is not None:
        kept = {check_id for name in lists["only"] for check_id in valid[name]}
        zeroed.update({check_id: "only leaves it out" for check_id in points
                       if check_id not in kept})
    if lists["exclude"] is not None:
        zeroed.update({check_id: "exclude names it" for name in lists["exclude"]
                       for check_id in valid[name]})
    clashes = [f"{check_id} ({why})" for check_id, why in zeroed.items()
               if check_id in named_positive]
    if clashes:
        raise WeightsError(f"{source}: [checks] gives points to a check that does not count: "
                           f"{', '.join(sorted(clashes))}")
    points.update(dict.fromkeys(zeroed, 0))
    result = Weights(variant, MappingProxyType(points), source)
    if not result.counted:
        raise WeightsError(f"{source}: no check of {variant} counts under these weights")
    return result


def original(grade: Mapping[str, Any]) -> dict[str, Any]:
    """The grade as the grader scored it: :func:`rescore` undone (a grade never re-scored
    is returned as it is)."""
    block = grade.get("weights")
    if not block:
        return dict(grade)
    before = block["original"]
    checks = []
    for check in grade["checks"]:
        points, max_points = before["points"].get(check["id"],
                                                  (check["points"], check["max_points"]))
        checks.append({**check, "points": points, "max_points": max_points})
    for index, check in before["excluded_checks"]:
        checks.insert(index, check)
    undone = {key: value for key, value in grade.items() if key != "weights"}
    return {**undone, "checks": checks, "score": before["score"],
            "max_score": before["max_score"], "passed": before["passed"]}


def scored_with(grade: Mapping[str, Any], weights: Weights) -> bool:
    """Whether ``grade`` already holds the scores of ``weights`` (its reports need no
    rewriting): re-scored with the same weights, or never re-scored and ``weights`` are
    the spec's."""
    block = grade.get("weights")
    if block:
        return bool(block.get("sha256") == weights.fingerprint)
    return weights.fingerprint == default(weights.variant).fingerprint


def rescore(grade: Mapping[str, Any], weights: Weights) -> dict[str, Any]:
    """``grade`` (a grade.json dict) scored under ``weights``; ``grade`` is left as it was.

    A counted check is worth its weight and earns the same share of it as it
    earned of its old points (all or nothing, or the performance band's
    share); a check of weight 0 is taken out of ``checks`` and listed in
    ``weights.excluded``. ``max_score`` is the sum of the counted weights (a
    counted check the grade lacks still counts, earning nothing); ``passed``:
    the grade was gradable and every counted scored check passed. A check the
    weights do not know (a grade of another socklab) keeps its points.

    The grader's own scores go along in ``weights.original`` (each check's
    points and maximum, the checks taken out, score, maximum, verdict): a
    re-scored grade can be re-scored again, under other weights, as if from
    the grader's (``rescore(rescore(g, a), b) == rescore(g, b)``), and
    :func:`original` gives the grader's back.
    """
    grade = original(grade)
    if grade.get("variant") != weights.variant:
        raise WeightsError(f"a grade of {grade.get('variant')!r} cannot be scored with "
                           f"weights for {weights.variant!r}")
    kept: list[dict[str, Any]] = []
    excluded: list[str] = []
    excluded_checks: list[list[Any]] = []
    for index, check in enumerate(grade["checks"]):
        weight = weights.points.get(check["id"], check["max_points"])
        if weight == 0:
            excluded.append(check["id"])
            excluded_checks.append([index, check])
            continue
        old = check["max_points"]
        if old:
            earned = check["points"] * weight / old
        else:
            earned = weight if check["status"] == "passed" else 0
        kept.append({**check, "points": _tidy(earned), "max_points": weight})
    present = {check["id"] for check in grade["checks"]}
    missing = [check_id for check_id in weights.counted if check_id not in present]
    max_score = _tidy(sum(c["max_points"] for c in kept)
                      + sum(weights.points[i] for i in missing))
    # A scored check the grade lacks did not pass; a missing performance check earns nothing.
    lacking = [check_id for check_id in missing if not check_id.startswith("performance.")]
    passed = bool(grade.get("gradable", True)) and not lacking and all(
        c["status"] == "passed" for c in kept if c.get("scored", True))
    before = {"score": grade["score"], "max_score": grade["max_score"],
              "passed": grade["passed"],
              "points": {c["id"]: [c["points"], c["max_points"]] for c in grade["checks"]},
              "excluded_checks": excluded_checks}
    return {**grade, "checks": kept, "score": _tidy(sum(c["points"] for c in kept)),
            "max_score": max_score, "passed": passed,
            "weights": {"source": weights.source or "spec", "sha256": weights.fingerprint,
                        "excluded": excluded,
                        "changed": {k: list(v) for k, v in weights.changed().items()
                                    if v[1] != 0},
                        "original": before}}


def load(path: str | None, variant: str) -> Weights:
    """The weights of ``CHECKS=path`` (None: the spec's points); WeightsError says why not."""
    if path is None:
        return default(variant)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise WeightsError(f"CHECKS={path}: cannot read it: "
                           f"{getattr(error, 'strerror', None) or error}") from None
    return parse(text, variant, source=path)
