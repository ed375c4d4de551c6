"""``python3 -m socklab.host.grade``: the command behind ``make grade``.

    python3 -m socklab.host.grade run --variant select --submission server.py \\
        [--out DIR] [--keep] [--time-limit S] [--no-performance] [--checks FILE]
    python3 -m socklab.host.grade class --variant select --submissions DIR \\
        [--out DIR] [--jobs N] [--checks FILE] [--force]
    python3 -m socklab.host.grade sweep [RUN_ID]

``class`` grades every learner's submission of a directory (``make
grade-class``, socklab.host.grade.class_run). ``--checks FILE``: the checks
that count and their points (socklab.host.grade.weights).

Exit status: 0 every scored check passed (class: every learner's), 1 some did
not, 2 no grading was possible (bad arguments, a missing file, no Docker, no image). A submission
that crashes, never listens or hangs is graded (1), never an error of the
grader. The lab image is ``--image`` or ``$SOCKLAB_IMAGE`` (``make grade``
builds it and sets it).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from socklab.grading import spec
from socklab.host.grade import weights as weighting
from socklab.host.grade.submission import SubmissionError, stage
from socklab.host.grade.turns import Turns

NO_GRADING = 2
NO_IMAGE = ("no lab image: run it as make grade, or set SOCKLAB_IMAGE "
            "(eval \"$(PYTHONPATH=services python3 -m socklab.host.build images)\")")


def _common(command: argparse.ArgumentParser, each: str) -> None:
    """The options ``run`` and ``class`` share (``each``: what one grading is)."""
    command.add_argument("--variant", required=True, help=f"one of {', '.join(spec.GRADED)}")
    command.add_argument("--image", default=os.environ.get("SOCKLAB_IMAGE"))
    command.add_argument("--time-limit", type=float, default=None,
                         help=f"seconds for {each} (default: 900)")
    command.add_argument("--checks", default=None, metavar="FILE",
                         help="a TOML file: which checks count and their points "
                              "(docs/grading-class.md)")
    command.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                         help="one more label on everything the run creates (a test run's, "
                              "a class run's), so that its owner can sweep it")
    command.add_argument("--ssh-config", default=None, metavar="FILE",
                         help="the ssh_config that reaches the engines (make vms writes "
                              ".vms/ssh_config); default: ~/.ssh/config")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python3 -m socklab.host.grade", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="grade one submission")
    _common(run, "the whole grading")
    run.add_argument("--submission", required=True,
                     help="a .py file, a directory with main.py, an executable, or 'reference'")
    run.add_argument("--out", default=None,
                     help="results directory (default: results/grade-<name>-<UTC time>)")
    run.add_argument("--keep", action="store_true",
                     help="leave the grading lab running (and say how to enter it)")
    run.add_argument("--no-performance", action="store_true",
                     help="skip the performance check (it earns points only)")
    run.add_argument("--performance-lock", default=None, metavar="FILE",
                     help="a class run's lock file: checks take it shared, the performance "
                          "check alone (socklab.host.grade.turns)")
    run.add_argument("--engine", default=None, metavar="URL",
                     help="grade on this Docker engine (ssh://user@address, a swarm worker); "
                          "default: this machine's")
    run.add_argument("--observe", choices=("host", "reader"), default="",
                     help="how the server's /proc is read: from this machine (host), or by a "
                          "reader container beside it (the default for another engine)")
    klass = commands.add_parser("class", help="grade a class: every submission of a directory")
    _common(klass, "each learner's grading")
    klass.add_argument("--submissions", required=True,
                       help="a directory: one file or directory per learner, named by the id")
    klass.add_argument("--out", default=None,
                       help="results directory (default: results/class-<variant>-<dir name>)")
    klass.add_argument("--jobs", type=int, default=None,
                       help="gradings at once (default: one per core, within the networks "
                            "Docker has left)")
    klass.add_argument("--force", action="store_true",
                       help="grade every learner again, changed or not")
    klass.add_argument("--swarm", default=None, metavar="URL",
                       help="spread the gradings over this swarm's workers (the manager's "
                            "engine, ssh://user@address); default: this machine")
    sweep = commands.add_parser("sweep", help="remove what grading runs left (KEEP=1 labs)")
    sweep.add_argument("run_id", nargs="?", default="")
    return top


def fail(message: str) -> int:
    print(f"socklab grade: {message}", file=sys.stderr)
    return NO_GRADING


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    if args.variant not in spec.GRADED:
        return fail(f"cannot grade {args.variant!r}: gradable variants are "
                    f"{', '.join(spec.GRADED)}")
    if not args.image:
        return fail(NO_IMAGE)
    try:
        weights = weighting.load(args.checks, args.variant)
    except weighting.WeightsError as error:
        return fail(str(error))
    try:
        submission = stage(args.submission)
    except SubmissionError as error:
        return fail(str(error))
    try:
        import docker
        import docker.errors

        from socklab.host.grade import engines, grader, report
        from socklab.host.grade.lab import GradeLab
        from socklab.registry import VARIANTS
    except ImportError as error:
        submission.cleanup()
        return fail(f"{error}: run it as make grade (it uses the project's venv)")
    where = args.engine or "this machine"
    try:
        with engines.session_home(args.ssh_config) as home:
            engine = engines.connect(args.engine, home)
        engine.ping()
        engine.images.get(args.image)
    except docker.errors.ImageNotFound:
        submission.cleanup()
        return fail(f"no image {args.image} on {where}: build it with make images "
                    "(a worker VM gets it from make provision)")
    except (docker.errors.DockerException, engines.EngineError, OSError) as error:
        submission.cleanup()
        return fail(f"the Docker engine of {where} is not reachable: {error}")

    started, clock = datetime.now(UTC), time.monotonic()
    out = Path(args.out) if args.out else grader.default_out(submission, started)
    run_id = f"{started:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
    signal.signal(signal.SIGTERM, _terminate)
    try:
        labels = dict(label.split("=", 1) for label in args.label)
    except ValueError:
        submission.cleanup()
        return fail(f"a --label is KEY=VALUE: {args.label}")
    lab = GradeLab(engine, args.image, run_id, VARIANTS[args.variant], submission, labels,
                   observe=args.observe)
    turns = Turns(args.performance_lock)
    grading = grader.Grading(
        lab, VARIANTS[args.variant], submission,
        time_limit=args.time_limit or grader.TIME_LIMIT,
        performance=not args.no_performance and weights.measure_performance,
        turns=turns)
    interrupted, broken = False, ""
    try:
        grading.run()
    except KeyboardInterrupt:
        interrupted = True
        print("socklab grade: stopped; writing what was graded so far", file=sys.stderr)
    except Exception:  # a fault of the grader, not of the submission: say so, keep the results
        broken = traceback.format_exc().strip().splitlines()[-1]
        traceback.print_exc()
        print("socklab grade: the grader failed (above); writing what was graded so far",
              file=sys.stderr)
    try:
        grade = grading.grade(started, time.monotonic() - clock, args.image, args.keep)
        if broken:  # the submission was not graded: it must not count against the learner
            grade.update(gradable=False, passed=False, grader_error=f"the grader failed: {broken}")
        if args.checks is not None:
            grade = weighting.rescore(grade, weights)
        out.mkdir(parents=True, exist_ok=True)
        (out / "server.log").write_text(lab.logs() if lab.server is not None else "")
        report.write_all(grade, out)
    finally:
        if args.keep and not interrupted:
            print(f"socklab grade: the lab is kept: {lab.enter_command()}\n"
                  f"  remove it with: make grade-clean RUN={run_id}", file=sys.stderr)
        else:
            # A second Ctrl-C (or make's TERM after ours) must not cut the cleanup short.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            # Removing containers and a network is work for the machine (the engine's, the
            # kernel's): not while another grading of the class measures.
            with turns.check():
                lab.close()
            submission.cleanup()
    print(report.summary_table(grade))
    print(f"\nsocklab grade: results in {out}/ (report.md, grade.json, junit.xml, ...)",
          file=sys.stderr)
    if broken:
        return NO_GRADING
    return 0 if grade["passed"] else 1


def sweep(args: argparse.Namespace) -> int:
    import docker

    from socklab.host.grade.lab import sweep as sweep_labs

    removed = sweep_labs(docker.from_env(), args.run_id)
    print(f"socklab grade: removed {removed} containers, networks and volumes", file=sys.stderr)
    return 0


def grade_class(args: argparse.Namespace) -> int:
    from socklab.host.grade import class_run

    return class_run.main(args)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {"run": run, "class": grade_class, "sweep": sweep}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
