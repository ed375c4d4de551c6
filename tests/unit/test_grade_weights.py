"""CHECKS=file: an instructor's weights per check, parsed, validated, and applied to a grade."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from socklab.grading import spec
from socklab.host.grade import weights
from socklab.host.grade.weights import WeightsError, parse, rescore


def spec_grade(variant: str, failing: dict[str, str] | None = None, *,
               performance_share: float = 1.0, gradable: bool = True,
               sha256: str = "ab" * 32) -> dict[str, Any]:
    """A grade as the grader writes it: every check of the spec, passed unless ``failing``."""
    failing = failing or {}
    checks = []
    for check in spec.checks(variant):
        status = failing.get(check.id, "passed")
        earned = float(check.points) if status == "passed" else 0.0
        if check.category == "performance" and status == "passed":
            earned = round(check.points * performance_share, 2)
        checks.append({"id": check.id, "category": check.category, "title": check.title,
                       "points": earned, "max_points": check.points, "status": status,
                       "scored": check.category != "performance", "message": f"{status}",
                       "hint": check.hint, "page": spec.PAGES[check.page], "reproduce": "",
                       "seconds": 1.0, "details": {}})
    scored = [c for c in checks if c["scored"]]
    return {"schema": 1, "variant": variant,
            "submission": {"path": "s.py", "name": "s", "kind": "python", "sha256": sha256},
            "score": round(sum(c["points"] for c in checks), 2),
            "max_score": sum(c["max_points"] for c in checks),
            "passed": all(c["status"] == "passed" for c in scored), "gradable": gradable,
            "checks": checks, "server": {}, "performance": None,
            "timings": {"seconds": 60.0}, "versions": {}, "lab": {}}


EXAMPLE = """
variant = "exec"
exclude = ["conformance.naive", "conformance.framed"]

[checks]
"conformance.handshake" = 10
"performance.throughput" = 0
"robustness.*" = 2.5
"robustness.fuzz" = 7
"""


# -- defaults ---------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", spec.GRADED)
def test_the_default_is_the_specs_points(variant: str) -> None:
    default = weights.default(variant)
    assert dict(default.points) == {c.id: c.points for c in spec.checks(variant)}
    assert default.max_score == sum(c.points for c in spec.checks(variant))
    assert default.excluded == () and default.changed() == {}
    assert default.measure_performance and default.left_out == ()
    assert parse("", variant).points == default.points


def test_the_defaults_totals_per_category_are_the_specs() -> None:
    # select: 40 conformance, 35 concurrency, 20 robustness, 13 resources, 5 performance.
    assert weights.default("select").category_max() == {
        "conformance": 40, "concurrency": 35, "robustness": 20, "resources": 13,
        "security": 0, "performance": 5}
    assert weights.default("exec").category_max()["security"] == 20


# -- the file ---------------------------------------------------------------------------------

def test_the_example_resolves_ids_over_categories_and_exclude_last() -> None:
    w = parse(EXAMPLE, "exec", "course.toml")
    assert w.source == "course.toml"
    assert w.points["conformance.handshake"] == 10
    assert w.points["conformance.naive"] == 0 and w.points["conformance.framed"] == 0
    assert w.points["robustness.reset"] == 2.5 and w.points["robustness.vanish"] == 2.5
    assert w.points["robustness.fuzz"] == 7
    assert w.points["security.not-root"] == 10  # not listed: the spec's points
    assert not w.measure_performance
    assert w.excluded == ("conformance.naive", "conformance.framed", "performance.throughput")
    # 99 - 6 - 8 (excluded) - 5 (performance) + 4 (handshake 6 -> 10)
    # + robustness 5,5,5 -> 2.5,2.5,7: -3.
    assert w.max_score == 99 - 6 - 8 - 5 + 4 - 3
    assert w.changed()["conformance.handshake"] == (6, 10)
    assert list(w.points) == [c.id for c in spec.checks("exec")]


def test_only_keeps_what_it_names_and_takes_categories() -> None:
    w = parse('only = ["conformance.handshake", "security.*"]', "exec")
    assert w.counted == ("conformance.handshake", "security.not-root", "security.output-cap",
                         "security.time-limit")
    assert w.max_score == 6 + 10 + 5 + 5


def test_weights_keep_their_kind_of_number() -> None:
    w = parse('[checks]\n"conformance.echo" = 3.0\n"conformance.sizes" = 1.25', "select")
    assert w.points["conformance.echo"] == 3 and isinstance(w.points["conformance.echo"], int)
    assert w.points["conformance.sizes"] == 1.25


def test_an_unknown_id_is_named_with_every_valid_one() -> None:
    text = '[checks]\n"conformance.framd" = 10\n"robustness.fuz" = 1\n"conformance.echo" = 2'
    with pytest.raises(WeightsError) as error:
        parse(text, "select", "course.toml")
    message = str(error.value)
    assert "'conformance.framd'" in message and "'robustness.fuz'" in message
    first, listing = message.splitlines()
    assert first == ("course.toml: [checks]: select has no check 'conformance.framd', "
                     "'robustness.fuz'")
    assert listing.startswith("  select's checks: conformance.greeting, ")
    for check in spec.checks("select"):
        assert check.id in listing
    assert "robustness.*" in listing and "security.*" not in listing


@pytest.mark.parametrize("text, words", [
    ('exclude = ["performance.thruput"]', "exclude: select has no check 'performance.thruput'"),
    ('only = ["security.*"]', "only: select has no check 'security.*'"),
    ('exclude = "performance.throughput"', "exclude = 'performance.throughput': a list"),
    ('only = [1]', "only = [1]: a list"),
    ('[checks]\n"conformance.echo" = -1', "a weight is 0 (does not count) or more"),
    ('[checks]\n"conformance.echo" = true', "a weight is a number"),
    ('[checks]\n"conformance.echo" = "5"', "a weight is a number"),
    ('[checks]\n"conformance.echo" = inf', "a finite number"),
    ('[checks]\n"conformance.echo" = nan', "a finite number"),
    ('checks = 3', "[checks] is a table"),
    ('variant = "udp"', "written for variant 'udp', not 'select'"),
    ('weights = 1', "unknown key 'weights'"),
    ('[checks]\nexclude = ["conformance.echo"]', "write exclude before the [checks] line"),
    ('[checks\n', "not valid TOML"),
    ('only = []', "no check of select counts"),
    ('[checks]\n"conformance.*" = 0\n"concurrency.*" = 0\n"robustness.*" = 0\n'
     '"resources.*" = 0\n"performance.*" = 0', "no check of select counts"),
])
def test_a_bad_file_says_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(WeightsError, match=r"^CHECKS: ") as error:
        parse(text, "select")
    assert words in str(error.value)


def test_every_problem_is_reported_at_once() -> None:
    text = 'weights = 1\nexclude = ["nope"]\n[checks]\n"conformance.echo" = -2\n"x.y" = 1'
    with pytest.raises(WeightsError) as error:
        parse(text, "select")
    lines = str(error.value).splitlines()
    assert len(lines) == 5, lines
    assert all(line.startswith("CHECKS: ") for line in lines[:4])
    assert lines[4].startswith("  select's checks: ")


@pytest.mark.parametrize("text", [
    'exclude = ["conformance.echo"]\n[checks]\n"conformance.echo" = 4',
    'exclude = ["conformance.*"]\n[checks]\n"conformance.echo" = 4',
    'only = ["robustness.*"]\n[checks]\n"conformance.echo" = 4',
])
def test_points_for_a_check_that_does_not_count_is_a_contradiction(text: str) -> None:
    with pytest.raises(WeightsError, match=r"gives points to a check that does not count: "
                                           r"conformance\.echo"):
        parse(text, "select")


def test_an_id_wins_over_its_category_wherever_it_is_written() -> None:
    w = parse('[checks]\n"robustness.fuzz" = 9\n"robustness.*" = 1', "select")
    assert w.points["robustness.fuzz"] == 9 and w.points["robustness.reset"] == 1


def test_a_category_weight_may_be_excluded_for_one_check() -> None:
    w = parse('exclude = ["robustness.fuzz"]\n[checks]\n"robustness.*" = 1', "select")
    assert [w.points[i] for i in ("robustness.reset", "robustness.vanish",
                                  "robustness.slow-reader", "robustness.fuzz")] == [1, 1, 1, 0]


def test_an_unknown_variant_is_refused() -> None:
    with pytest.raises(WeightsError, match="no checks for 'smtp'"):
        parse("", "smtp")


def test_the_fingerprint_follows_the_weights_not_the_wording() -> None:
    a = parse('[checks]\n"conformance.echo" = 3', "select")
    b = parse('[checks]\n"conformance.echo" = 3.0  # the same', "select", "other.toml")
    c = parse('[checks]\n"conformance.echo" = 4', "select")
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert weights.default("select").fingerprint != a.fingerprint
    assert len(a.fingerprint) == 64


# -- re-scoring -------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", spec.GRADED)
def test_the_specs_weights_leave_a_grade_as_it_was(variant: str) -> None:
    failing = {spec.checks(variant)[1].id: "failed", spec.checks(variant)[-2].id: "timeout"}
    grade = spec_grade(variant, failing, performance_share=0.6)
    scored = rescore(grade, weights.default(variant))
    for key in ("score", "max_score", "passed", "checks"):
        assert scored[key] == grade[key], key
    block = {k: v for k, v in scored["weights"].items() if k != "original"}
    assert block == {"source": "spec", "excluded": [], "changed": {},
                     "sha256": weights.default(variant).fingerprint}
    assert weights.scored_with(grade, weights.default(variant))
    assert weights.scored_with(scored, weights.default(variant))


def test_rescoring_gives_each_check_its_weight_and_a_band_its_share() -> None:
    w = parse('[checks]\n"conformance.echo" = 12\n"performance.throughput" = 10\n'
              '"conformance.sizes" = 2', "select")
    grade = spec_grade("select", {"conformance.sizes": "failed"}, performance_share=0.6)
    scored = rescore(grade, w)
    points = {c["id"]: (c["points"], c["max_points"]) for c in scored["checks"]}
    assert points["conformance.echo"] == (12, 12)
    assert points["conformance.sizes"] == (0, 2)
    assert points["performance.throughput"] == (6, 10)  # 60 % of 10
    assert scored["max_score"] == 113 - 6 + 12 - 5 + 10 - 8 + 2
    assert scored["score"] == scored["max_score"] - 2 - 4
    assert scored["passed"] is False
    assert scored["weights"]["changed"] == {"conformance.echo": [6, 12],
                                            "conformance.sizes": [8, 2],
                                            "performance.throughput": [5, 10]}


def test_a_check_of_weight_zero_does_not_count_nor_fail_the_run() -> None:
    grade = spec_grade("select", {"concurrency.fd-wall": "timeout"})
    assert grade["passed"] is False
    w = parse('exclude = ["concurrency.fd-wall"]', "select")
    scored = rescore(grade, w)
    assert scored["passed"] is True
    assert scored["score"] == scored["max_score"] == 103
    assert "concurrency.fd-wall" not in {c["id"] for c in scored["checks"]}
    assert scored["weights"]["excluded"] == ["concurrency.fd-wall"]
    assert scored["weights"]["changed"] == {}  # excluded, not changed


def test_a_failing_performance_check_never_fails_the_run() -> None:
    grade = spec_grade("udp", {"performance.throughput": "failed"})
    assert rescore(grade, weights.default("udp"))["passed"] is True


def test_rescoring_leaves_the_grade_given_untouched() -> None:
    grade = spec_grade("exec", {"conformance.naive": "failed"})
    before = copy.deepcopy(grade)
    rescore(grade, parse(EXAMPLE, "exec"))
    assert grade == before


def test_a_counted_check_the_grade_lacks_counts_and_fails() -> None:
    grade = spec_grade("select")
    grade["checks"] = [c for c in grade["checks"] if c["id"] != "conformance.echo"]
    scored = rescore(grade, weights.default("select"))
    assert scored["max_score"] == 113 and scored["score"] == 107
    assert scored["passed"] is False
    grade = spec_grade("select")
    grade["checks"] = [c for c in grade["checks"] if c["id"] != "performance.throughput"]
    scored = rescore(grade, weights.default("select"))
    assert scored["max_score"] == 113 and scored["passed"] is True


def test_a_grade_that_was_not_gradable_never_passes() -> None:
    assert rescore(spec_grade("udp", gradable=False), weights.default("udp"))["passed"] is False


def test_a_grade_of_another_variant_is_refused() -> None:
    with pytest.raises(WeightsError, match="a grade of 'udp' cannot be scored with weights "
                                           "for 'select'"):
        rescore(spec_grade("udp"), weights.default("select"))


def test_a_check_the_weights_do_not_know_keeps_its_points() -> None:
    grade = spec_grade("udp")
    grade["checks"].append({**grade["checks"][0], "id": "conformance.legacy", "points": 2.0,
                            "max_points": 2})
    scored = rescore(grade, weights.default("udp"))
    assert scored["max_score"] == 50 + 2 and scored["score"] == 52


def test_a_rescored_grade_keeps_the_graders_scores_and_rescores_as_if_from_them() -> None:
    grade = spec_grade("exec", {"conformance.naive": "failed", "robustness.fuzz": "timeout"},
                       performance_share=0.3)
    first = parse(EXAMPLE, "exec", "a.toml")
    second = parse('only = ["conformance.*", "performance.*"]\n[checks]\n'
                   '"performance.throughput" = 20', "exec", "b.toml")
    once = rescore(grade, first)
    assert weights.original(once) == grade
    # Through JSON, as grade.json holds it.
    assert weights.original(json.loads(json.dumps(once))) == grade
    twice = rescore(once, second)
    assert twice == rescore(grade, second)
    assert twice["score"] == 6 + 8 + 8 + 5 + 5 + 3 + 6  # naive failed; 30 % of 20
    assert weights.original(twice) == grade
    assert weights.original(grade) == grade
    # The verdict comes back too: failing only an excluded check passes, then fails again.
    only_naive = spec_grade("exec", {"conformance.naive": "failed"})
    assert rescore(only_naive, first)["passed"] is True
    assert weights.original(rescore(only_naive, first)) == only_naive


def test_scored_with_says_whether_the_reports_need_rewriting() -> None:
    grade = spec_grade("exec")
    course = parse(EXAMPLE, "exec")
    assert not weights.scored_with(grade, course)
    assert weights.scored_with(rescore(grade, course), course)
    assert not weights.scored_with(rescore(grade, course), weights.default("exec"))
