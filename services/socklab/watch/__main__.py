"""``make watch``: a live view of a lab's hosts, in the terminal, as a web page, or as JSON.

    python3 -m socklab.watch [--lab NAME | --grade RUN | --label KEY=VALUE ...]
        [--web [--port 8765]] [--once [--format text|json]] [--every 0.5]

Without ``--lab`` it watches the default lab (every container on the network
``socklab``); ``--lab alice`` the lab of ``make up LAB=alice``; ``--grade
RUN`` the lab a ``make grade KEEP=1`` left running; ``--label``
any containers carrying the labels (the test suite's own hosts). It must be able to enter
the hosts' network namespaces: root on the machine, or a container with
``--pid host --cap-add SYS_ADMIN --cap-add SYS_PTRACE --cap-add
DAC_READ_SEARCH`` and the engine's socket (docs/watch.md). Exit status: 0,
1 when ``--once`` found no host, 2 when the engine or the namespaces cannot
be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time

from socklab.watch import view, web
from socklab.watch.collect import Collector
from socklab.watch.engine import Engine, EngineError

DEFAULT_PROJECT = "socklab"
GRADE_LABEL = "socklab.grade"  # on every container of a grading's lab: its run id
DEFAULT_PORT = 8765
# --once: two readings this far apart, so that counters and CPU have a rate.
ONCE_GAP = 0.5


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python3 -m socklab.watch", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    which = top.add_mutually_exclusive_group()
    which.add_argument("--lab", default="", help="the lab of make up LAB=NAME (default: "
                       "the default lab)")
    which.add_argument("--grade", metavar="RUN", help="the lab of a make grade KEEP=1 run "
                       "(its run id)")
    which.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                       help="watch the running containers carrying this label (repeatable)")
    top.add_argument("--web", action="store_true", help="serve the view on 127.0.0.1")
    top.add_argument("--port", type=int, default=DEFAULT_PORT,
                     help="the web page's port on 127.0.0.1 (0: any free one, announced)")
    top.add_argument("--once", action="store_true", help="one snapshot on stdout, then exit")
    top.add_argument("--format", choices=("text", "json"), default="text",
                     help="--once: text or JSON (the schema: docs/watch.md)")
    top.add_argument("--every", type=float, default=0.5, help="seconds between refreshes")
    return top


def target(args: argparse.Namespace) -> tuple[dict[str, list[str]], str]:
    """(the engine's filters that select the hosts, the name the view gives the lab).

    A lab is every container on its network (named as its Compose project):
    its own hosts, and those a learner starts beside them with ``docker run
    --network socklab`` (exercises 1 and 2).
    """
    if args.label:
        return {"label": args.label}, ",".join(args.label)
    if args.grade:
        return {"label": [f"{GRADE_LABEL}={args.grade}"]}, f"grade {args.grade}"
    network = f"{DEFAULT_PROJECT}-{args.lab}" if args.lab else DEFAULT_PROJECT
    return {"network": [network]}, args.lab or "default"


def check(collector: Collector) -> str | None:
    """Why the watcher cannot see the lab, or None."""
    collector.discover()
    problem = collector.problem
    if problem and ("Permission" in problem or "Operation not permitted" in problem):
        return (f"{problem}: entering a host's network namespace needs root on the "
                "machine (sudo make watch), or a container with --pid host and "
                "--cap-add SYS_ADMIN (docs/watch.md)")
    if problem and not collector.hosts:
        return problem
    return None


def terminal(collector: Collector, every: float) -> None:
    stop = threading.Event()
    try:
        while not stop.is_set():
            width = shutil.get_terminal_size((100, 40)).columns
            screen = view.render(collector.snapshot(), width)
            sys.stdout.write("\x1b[H\x1b[2J" + screen + "\n")
            sys.stdout.flush()
            stop.wait(every)
    except KeyboardInterrupt:
        sys.stdout.write("\n")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.every <= 0 or not 0 <= args.port < 65536:
        print("socklab watch: --every must be > 0 and --port in 0-65535", file=sys.stderr)
        return 2
    filters, lab = target(args)
    try:
        collector = Collector(Engine(), filters, lab, follow_logs=not args.once)
    except EngineError as error:
        print(f"socklab watch: {error}", file=sys.stderr)
        return 2
    problem = check(collector)
    if problem:
        print(f"socklab watch: {problem}", file=sys.stderr)
        return 2
    try:
        if args.once:
            collector.snapshot()
            time.sleep(ONCE_GAP)
            snapshot = collector.snapshot()
            print(json.dumps(snapshot, indent=2) if args.format == "json"
                  else view.render(snapshot, 200))
            if not snapshot["hosts"]:
                print(f"socklab watch: no running container matches {filters}: is the lab "
                      "up? (make up, make ps)", file=sys.stderr)
                return 1
            return 0
        if args.web:
            try:
                web.serve(collector.snapshot, args.port, args.every,
                          lambda line: print(line, file=sys.stderr, flush=True))
            except KeyboardInterrupt:
                pass
            except OSError as error:
                print(f"socklab watch: 127.0.0.1:{args.port}: {error}", file=sys.stderr)
                return 2
            return 0
        terminal(collector, args.every)
        return 0
    finally:
        collector.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
