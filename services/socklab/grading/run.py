"""One check by id, from a client host: ``socklab probe grade --variant V --check ID``.

This is the one-line reproduction every failed check of a report names, and
what the host's grader runs on its client host, check by check. It prints
one JSON object: ``status``, ``message``, ``details``, ``seconds``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from socklab.grading import echo, ftp, spec, udp
from socklab.grading import exec as exec_checks
from socklab.grading.echo import Target, Wrong
from socklab.grading.verdict import Finding

NAME = "grade"
HELP = "run one check of `make grade` against a server; prints its verdict as JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, choices=list(spec.GRADED))
    parser.add_argument("--check", required=True, metavar="ID",
                        help="a check id, e.g. conformance.sizes (make grade's report names it)")
    parser.add_argument("--host", default=None, help="(default: the variant's lab host)")
    parser.add_argument("--port", type=int, default=None, help="(default: the variant's port)")


def reproduce(variant: str, check_id: str, host: str | None = None) -> str:
    """The command that runs this check again from a client host."""
    where = f" --host {host}" if host else ""
    return f"socklab probe grade --variant {variant} --check {check_id}{where}"


def judge(body: Callable[[Target], None], target: Target, check_id: str) -> Finding:
    """Run one check's body; its finding (an OSError it did not expect fails it too)."""
    finding = Finding()
    try:
        body(target)
    except Wrong as wrong:
        finding.fail(str(wrong), wrong.status)
    except TimeoutError as error:
        finding.fail(f"{check_id}: no answer in time ({error or 'timed out'})", "timeout")
    except OSError as error:
        finding.fail(f"{check_id}: {type(error).__name__}: {error} talking to {target.where}")
    return finding


# The check bodies of each variant that is not an echo.
BODIES: dict[str, dict[str, Callable[[Target], None]]] = {
    "udp": udp.CHECKS, "exec": exec_checks.CHECKS, "ftp": ftp.CHECKS}


def run(args: argparse.Namespace) -> dict[str, Any]:
    checks = BODIES.get(args.variant, echo.CHECKS)
    spec.check(args.variant, args.check)  # KeyError: the variant has no such check
    if args.check not in checks:
        raise KeyError(f"{args.check} is measured by the host's grader, not from a client")
    target = Target.of(args.variant, args.host, args.port)
    started = time.monotonic()
    finding = judge(checks[args.check], target, args.check)
    return {**finding.as_dict(), "check": args.check, "variant": args.variant,
            "target": target.where, "seconds": round(time.monotonic() - started, 3)}
