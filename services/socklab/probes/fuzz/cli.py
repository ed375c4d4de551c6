"""The probe's command line: ``socklab probe fuzz --target T --seed S --inputs N``."""

from __future__ import annotations

import argparse
from typing import Any

from socklab.probes.common import Stopwatch
from socklab.probes.fuzz.cases import make_case
from socklab.probes.fuzz.tally import Run, fuzz
from socklab.probes.fuzz.targets import TARGETS

NAME = "fuzz"
HELP = "send seeded malformed inputs to one server; check it still answers correctly"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, choices=list(TARGETS),
                        help="which server and port to fuzz")
    parser.add_argument("--inputs", type=int, default=1000,
                        help="cases to send (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same cases "
                        "(default: %(default)s)")
    parser.add_argument("--batch", type=int, default=100,
                        help="cases between two health checks (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="connections at once (default: 1 for tcp, 8 for ftp, else 4)")
    parser.add_argument("--host", default=None, help="server (default: the target's lab host)")
    parser.add_argument("--port", type=int, default=None, help="(default: the target's port)")
    parser.add_argument("--read-timeout", type=float, default=1.0,
                        help="seconds to wait for a reply per case (default: %(default)s)")
    parser.add_argument("--only", type=int, default=None, metavar="INDEX",
                        help="replay the one case INDEX of --seed, and show it")


def plan(args: argparse.Namespace) -> Run:
    target = TARGETS[args.target]
    indices = [args.only] if args.only is not None else list(range(args.inputs))
    return Run(target, args.host or target.host, args.port or target.port, args.seed, indices,
               args.batch, args.concurrency or target.concurrency, args.read_timeout)


def run(args: argparse.Namespace) -> dict[str, Any]:
    clock, plan_ = Stopwatch(), plan(args)
    tally = fuzz(plan_)
    result = {"target": plan_.target.name, "host": plan_.host, "port": plan_.port,
              "seed": plan_.seed, "inputs": len(plan_.indices),
              "batches": len(plan_.batches), "concurrency": plan_.concurrency,
              **tally.report()}
    if plan_.target.transport == "udp":
        result.update(datagrams=tally.datagrams, answered=tally.answered)
    if args.only is not None:
        result["case"] = make_case(plan_.target, args.seed, args.only).describe()
    result["seconds"] = clock()
    return result
