"""``python -m socklab.host.bench``: run the benchmark (``make bench``), re-render, or sweep.

    python -m socklab.host.bench run [--quick] [--out results] [--image TAG]
    python -m socklab.host.bench report results/bench-<timestamp>   # report.md and plots again
    python -m socklab.host.bench sweep RUN_ID|all                   # what a killed run left
    python -m socklab.host.bench compare RUN_A RUN_B                # what changed between two
    python -m socklab.host.bench profile epoll --size 1024 --concurrency 10   # py-spy a server
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from socklab.host.bench.grid import FULL, QUICK


def _image(given: str | None) -> str:
    if given:
        return given
    if os.environ.get("SOCKLAB_IMAGE"):
        return os.environ["SOCKLAB_IMAGE"]
    from socklab.host.build import ensure_images

    return ensure_images()


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="python -m socklab.host.bench", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run every workload, write results/bench-<time>/")
    run.add_argument("--quick", action="store_true", help="a few cells, small N (< 2 min)")
    run.add_argument("--out", default="results", help="parent directory (default: results)")
    run.add_argument("--image", help="lab image (default: $SOCKLAB_IMAGE, else build)")
    run.add_argument("--run-id", help="label value of the run's containers (for a sweep "
                     "by the caller; default: the time and this process's id)")
    report = commands.add_parser("report", help="render report.md and the plots again")
    report.add_argument("directory")
    prof = commands.add_parser("profile", help="py-spy a server under the bench's load")
    prof.add_argument("kind", choices=("tcp", "select", "epoll", "twisted", "asyncio", "uvloop",
                                       "threaded", "ftp"))
    prof.add_argument("--size", type=int, default=1024)
    prof.add_argument("--concurrency", type=int, default=10)
    prof.add_argument("--seconds", type=float, default=8.0)
    prof.add_argument("--image", help="lab image (default: $SOCKLAB_IMAGE, else build)")
    prof.add_argument("--out", default="results", help="where the raw stacks go")
    comparing = commands.add_parser("compare", help="what changed between two runs")
    comparing.add_argument("first", help="a run's directory (or its results.json)")
    comparing.add_argument("second")
    sweep = commands.add_parser("sweep", help="remove a bench run's containers and network")
    sweep.add_argument("run_id", help="a run id, or 'all'")
    args = top.parse_args(argv)
    if args.command == "run":
        from socklab.host.bench.orchestrate import run as run_bench

        try:
            out = run_bench(QUICK if args.quick else FULL, _image(args.image), Path(args.out),
                            args.run_id)
        except KeyboardInterrupt:
            print("\nsocklab bench: interrupted; its containers were removed", file=sys.stderr)
            return 130
        errors = json.loads((out / "results.json").read_text())["errors"]
        for error in errors:
            print(f"socklab bench: {error['workload']} failed: {error['error']}",
                  file=sys.stderr)
        print(f"socklab bench: {out}/report.md", file=sys.stderr)
        print(out)
        return 1 if errors else 0
    if args.command == "report":
        from socklab.host.bench import plots
        from socklab.host.bench import report as render

        directory = Path(args.directory)
        results = json.loads((directory / "results.json").read_text())
        (directory / "report.md").write_text(render.render(results,
                                                           plots.write_all(results, directory)))
        return 0
    if args.command == "compare":
        from socklab.host.bench.compare import compare, load_run

        try:
            first, second = load_run(args.first), load_run(args.second)
        except (OSError, ValueError) as error:
            print(f"socklab bench compare: {error}", file=sys.stderr)
            return 2
        print("\n".join(compare(first, second)))
        return 0
    if args.command == "profile":
        from socklab.host.bench.profile import profile

        Path(args.out).mkdir(parents=True, exist_ok=True)
        found = profile(args.kind, args.size, args.concurrency, args.seconds,
                        _image(args.image), Path(args.out))
        print(found["text"])
        print(f"\nraw stacks: {found['raw']}\nload: {json.dumps(found['load'])[:600]}")
        return 0
    import docker

    from socklab.host.bench.lab import sweep as sweep_run

    removed = sweep_run(docker.from_env(), "" if args.run_id == "all" else args.run_id)
    print(f"socklab bench: removed {removed} containers/networks/volumes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
