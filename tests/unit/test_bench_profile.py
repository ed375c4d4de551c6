"""Reading py-spy's collapsed stacks: self and total samples per function."""

from __future__ import annotations

from socklab.host.bench.profile import format_tally, frame_name, tally

RAW = """\
<module> (socklab/__main__.py:4);serve_forever (socklab/servers/readiness.py:120);poll (socklab/servers/readiness.py:90) 30
<module> (socklab/__main__.py:4);serve_forever (socklab/servers/readiness.py:120);_read (socklab/servers/readiness.py:200);feed (socklab/sessions/echo.py:21) 10
<module> (socklab/__main__.py:4);serve_forever (socklab/servers/readiness.py:120) 10
garbage line
"""  # noqa: E501


def test_frame_name_keeps_function_and_file() -> None:
    assert frame_name("poll (socklab/servers/readiness.py:90)") == "poll (readiness.py)"
    assert frame_name("<module>") == "<module>"


def test_tally_counts_self_at_the_leaf_and_total_on_every_frame() -> None:
    own, total, samples = tally(RAW)
    assert samples == 50
    assert own["poll (readiness.py)"] == 30
    assert own["serve_forever (readiness.py)"] == 10
    assert total["serve_forever (readiness.py)"] == 50
    assert total["feed (echo.py)"] == 10


def test_format_tally_gives_percentages() -> None:
    text = format_tally(*tally(RAW))
    assert "50 samples" in text
    assert " 60.0  poll (readiness.py)" in text
    assert "100.0  serve_forever (readiness.py)" in text
