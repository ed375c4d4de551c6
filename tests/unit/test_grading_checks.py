"""The grading checks' pure parts: the spec's table and the verdict messages."""

from __future__ import annotations

import pytest

from socklab.grading import echo, spec
from socklab.grading.run import BODIES, reproduce
from socklab.grading.verdict import Finding, compare, difference, excerpt, size
from socklab.registry import VARIANTS


@pytest.mark.parametrize("variant", spec.GRADED)
def test_every_check_has_a_body_on_the_client_or_is_the_hosts(variant: str) -> None:
    bodies = BODIES.get(variant, echo.CHECKS)
    ids = [c.id for c in spec.checks(variant)]
    assert len(ids) == len(set(ids)), "a check id twice"
    missing = [i for i in ids if i not in bodies]
    assert missing in ([], ["performance.throughput"])
    assert {c.category for c in spec.checks(variant)} <= set(spec.CATEGORIES)


def test_the_variants_checks_follow_their_contract() -> None:
    ids = {v: {c.id for c in spec.checks(v)} for v in spec.GRADED}
    assert "concurrency.sequential" in ids["tcp"]
    assert "concurrency.many-clients" not in ids["tcp"]  # tcp serves one at a time
    assert "concurrency.fd-wall" in ids["select"] and "concurrency.fd-wall" not in ids["epoll"]
    assert "concurrency.idle-thousands" in ids["epoll"]
    for name in ("select", "epoll", "twisted"):
        assert "concurrency.one-thread" in ids[name]
    assert all(VARIANTS[v].concurrent == ("concurrency.many-clients" in ids[v])
               for v in ("tcp", "select", "epoll", "twisted", "udp"))


def test_performance_is_a_small_share_and_never_the_whole() -> None:
    for variant in spec.GRADED:
        checks = spec.checks(variant)
        total = sum(c.points for c in checks)
        perf = sum(c.points for c in checks if c.category == "performance")
        assert 0 < perf <= 0.1 * total


@pytest.mark.parametrize(("ratio", "share"), [(1.2, 1.0), (0.8, 1.0), (0.79, 0.6), (0.5, 0.6),
                                              (0.3, 0.3), (0.1, 0.0), (0.0, 0.0)])
def test_performance_bands(ratio: float, share: float) -> None:
    assert spec.performance_share(ratio) == share


def test_unknown_variant_or_check_names_what_there_is() -> None:
    with pytest.raises(KeyError, match="gradable"):
        spec.checks("exec-nonexistent")
    with pytest.raises(KeyError, match="no check"):
        spec.check("select", "conformance.nothing")


def test_size_is_said_the_way_a_learner_reads_it() -> None:
    assert [size(n) for n in (1, 1000, 64 << 10, 16 << 20, 1500)] == [
        "1 B", "1,000 B", "64 KiB", "16 MiB", "1,500 B"]


def test_difference_finds_the_first_differing_byte_past_a_block() -> None:
    expected = bytes(10_000)
    got = bytearray(expected)
    got[5000] = 1
    assert difference(expected, bytes(got)) == 5000
    assert difference(expected, expected[:7000]) == 7000
    assert difference(expected, expected) is None


def test_compare_says_what_was_expected_and_what_came() -> None:
    assert compare(b"HELLO", b"HELLO", "complete") is None
    missing = compare(b"HELLO WORLD", b"HELLO", "eof")
    assert missing is not None
    assert "expected 11 B; 5 B came, then the server closed" in missing
    assert "Missing from byte 5" in missing and "b' WORLD'" in missing
    wrong = compare(b"HELLO", b"HELlo", "complete")
    assert wrong is not None and "First difference at byte 3" in wrong
    assert "b'LO'" in wrong and "b'lo'" in wrong
    nothing = compare(b"hello", b"", "timeout")
    assert nothing is not None and "nothing came, then nothing more" in nothing


def test_excerpt_is_short_whatever_the_size() -> None:
    assert len(excerpt(bytes(16 << 20), 0)) < 80
    assert excerpt(b"abc", 3) == "nothing"


def test_a_finding_keeps_its_first_failure() -> None:
    finding = Finding().fail("first").fail("second", "timeout")
    assert (finding.status, finding.message, finding.ok) == ("failed", "first", False)


def test_reproduce_is_a_probe_command_a_client_host_runs() -> None:
    assert reproduce("select", "conformance.sizes") == (
        "socklab probe grade --variant select --check conformance.sizes")
