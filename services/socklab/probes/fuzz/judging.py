"""Judging: what counts as a wrong answer, and the one boundary where errors become words.

Each family knows what its server should answer (``Family.judge``) and how
a correct client checks it (``Family.check``); this module holds what they
share: the error a wrong health-check answer raises, the message that names
the first differing byte, and the two entry points the run calls, which
judge only a whole reply and turn every error of a health check into one line
of the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from socklab.protocol.errors import RemoteProtocolError

if TYPE_CHECKING:
    from socklab.probes.fuzz.cases import Case
    from socklab.probes.fuzz.families.base import Family
    from socklab.probes.fuzz.play import Outcome


class HealthError(Exception):
    """The server answered a correct client wrongly."""


# What a health check can run into: the network, the protocol, a wrong answer,
# and a client's own parse errors (a bad JSON answer, a missing field).
HEALTH_ERRORS = (OSError, RemoteProtocolError, HealthError, ValueError, KeyError)


def expect(condition: bool, what: str, got: object) -> None:
    """Raise HealthError saying what was expected and what came, unless ``condition``."""
    if not condition:
        raise HealthError(f"{what}; got {got!r:.200}")


def first_difference(reply: bytes, expected: bytes) -> str | None:
    """None if equal, else where ``reply`` first differs from ``expected``."""
    if reply == expected:
        return None
    at = next((i for i, (a, b) in enumerate(zip(reply, expected, strict=False)) if a != b),
              min(len(reply), len(expected)))
    return f"differs at byte {at}: {len(reply)} bytes back for {len(expected)} expected"


def judge(family: Family, case: Case, outcome: Outcome) -> str | None:
    """What is wrong with the reply, or None; a reply not wholly read is not judged."""
    return family.judge(case, outcome) if outcome.complete else None


def check_health(family: Family, host: str, port: int, token: int) -> str | None:
    """None if a correct client got exactly the right answer, else what went wrong."""
    try:
        family.check(host, port, token)
    except HEALTH_ERRORS as error:
        return f"{type(error).__name__}: {error}"
    return None
