"""How steady a class run's performance figures are: the lab's own server graded N times.

    PYTHONPATH=services .venv/bin/python -m socklab.host.grade.fairness \\
        --variant select --count 8 [--jobs 2] [--out DIR]

Every "learner" of the class is the lab's own server of the variant
(``make grade SUBMISSION=reference``), graded by ``make grade-class``'s run
with its JOBS and its performance turns. Each one's performance check
measures the reference against itself, so every ratio should be 1: the
spread of the ratios across the class is what a neighbour's load, or the
machine's, does to a learner's figure. It prints each ratio, the median,
and the largest distance from it (issue 13 asks: within 10% on a quiet
machine). The lab image is ``$SOCKLAB_IMAGE``, as for ``make grade``. The
class view it writes lists every "learner" as ``pending``: what was graded
is not the placeholder file in its place; the ratios come from each
grade.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from socklab.grading import spec
from socklab.host.grade import __main__ as grade_cli
from socklab.host.grade import class_run, classroom
from socklab.host.grade import weights as weighting


def reference_command(args: argparse.Namespace, entry: classroom.Entry, out: Path,
                      class_id: str, weights: weighting.Weights,
                      worker: class_run.Worker = class_run.LOCAL) -> list[str]:
    """make grade's command for the lab's own server, in the place of the learner's file."""
    command = class_run.grader_command(args, entry, out, class_id, weights, worker)
    command[command.index("--submission") + 1] = "reference"
    return command


def class_args(variant: str, submissions: str, out: Path, jobs: int | None) -> argparse.Namespace:
    """make grade-class's arguments for the stand-in class, every learner graded again."""
    argv = ["class", "--variant", variant, "--submissions", submissions, "--out", str(out),
            "--force"] + (["--jobs", str(jobs)] if jobs else [])
    return grade_cli.parser().parse_args(argv)


def spread(ratios: list[float]) -> tuple[float, float]:
    """(median, the largest distance of a ratio from it, as a share of the median)."""
    middle = statistics.median(ratios)
    return middle, max(abs(r - middle) for r in ratios) / middle


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="python3 -m socklab.host.grade.fairness",
                                  description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--variant", default="select", choices=spec.GRADED)
    top.add_argument("--count", type=int, default=8)
    top.add_argument("--jobs", type=int, default=None)
    top.add_argument("--out", default=None)
    options = top.parse_args(argv)
    out = Path(options.out or f"results/fairness-{options.variant}-"
               f"{datetime.now(UTC):%Y%m%d-%H%M%S}")
    with tempfile.TemporaryDirectory(prefix="socklab-fairness-") as directory:
        for index in range(1, options.count + 1):
            Path(directory, f"reference-{index:02}.py").write_text(
                "# graded as the lab's own server (socklab.host.grade.fairness)\n")
        args = class_args(options.variant, directory, out, options.jobs)
        status = class_run.main(args, command=reference_command)
    if status == classroom.NO_GRADING:
        return status
    ratios = {}
    for learner in sorted(p.name for p in out.iterdir() if p.name.startswith("reference-")):
        grade = json.loads((out / learner / "grade.json").read_text())
        if grade.get("performance"):
            ratios[learner] = float(grade["performance"]["ratio"])
    if not ratios:
        print("no performance figure was measured", file=sys.stderr)
        return 1
    middle, widest = spread(list(ratios.values()))
    for learner, ratio in ratios.items():
        print(f"{learner}  {ratio:.3f}")
    print(f"median {middle:.3f}; the farthest {widest:.1%} from it "
          f"({len(ratios)} gradings, {options.jobs or 'default'} at once); results in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
