"""A stand-in for ``python3 -m socklab.host.grade run`` in the class run's unit tests.

It takes the grader's arguments, reads what to pretend from a line of the
submission (``# fake: fail=<id>,<id> sleep=<s> hang=1 crash=1 hold=1``; hold: 60 s unless
$FAKE_GRADER_RELEASE is set), writes a
grade.json and the reports as the grader does (``report.write_all``), and
exits as the grader would. Its "checks" (``checks=<s>``) take the run's
turns as the grader's do (``Turns.check``), its "measurement"
(``measure=<s>``) too (``Turns.measurement``), and each is appended to
``<lock>.turns`` (``check|measure start end``) so that a test can see what
overlapped. On TERM it writes a partial grade and exits 1, as the grader
does.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from test_grade_class import spec_grade

from socklab.host.grade import report
from socklab.host.grade import weights as weighting
from socklab.host.grade.submission import content_hash
from socklab.host.grade.turns import Turns


def behaviour(path: Path) -> dict[str, str]:
    text = path.read_text() if path.is_file() else (path / "main.py").read_text()
    for line in text.splitlines():
        if line.startswith("# fake:"):
            return dict(item.split("=", 1) for item in line[len("# fake:"):].split())
    return {}


def main() -> int:
    top = argparse.ArgumentParser()
    top.add_argument("command")
    top.add_argument("--variant")
    top.add_argument("--submission")
    top.add_argument("--out")
    top.add_argument("--performance-lock")
    top.add_argument("--checks")
    top.add_argument("--no-performance", action="store_true")
    args, _ = top.parse_known_args()
    path = Path(args.submission)
    fake = behaviour(path)
    out = Path(args.out)
    failing = {c: "failed" for c in fake.get("fail", "").split(",") if c}

    def write(partial: bool) -> None:
        grade = spec_grade(args.variant, failing, sha256=content_hash(path),
                           ratio=None if args.no_performance else 1.0)
        if partial:
            grade["checks"] = grade["checks"][:3]
        if args.checks:
            grade = weighting.rescore(grade, weighting.load(args.checks, args.variant))
        report.write_all(grade, out)

    def stop(signum: int, frame: object) -> None:
        print("fake grader: stopped", flush=True)
        write(partial=True)
        sys.exit(1)

    signal.signal(signal.SIGTERM, stop)
    print(f"fake grader: {json.dumps(fake)}", flush=True)
    if fake.get("crash"):
        return 2
    time.sleep(float(fake.get("sleep", "0")))
    if fake.get("hold") and not os.environ.get("FAKE_GRADER_RELEASE"):
        time.sleep(60)
    if fake.get("hang"):
        time.sleep(3600)
    turns = Turns(args.performance_lock)

    def turn(kind: str, seconds: float) -> None:
        began = time.time()
        time.sleep(seconds)
        if args.performance_lock:
            with open(args.performance_lock + ".turns", "a") as log:
                log.write(f"{kind} {began} {time.time()}\n")

    for _ in range(3):
        with turns.check():
            turn("check", float(fake.get("checks", "0.05")))
    if not args.no_performance:
        with turns.measurement("fake grader: waiting"):
            turn("measure", float(fake.get("measure", "0.2")))
    write(partial=False)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
