"""``python -m socklab.bench``: run the benchmark (``make bench``), re-render, or sweep.

    python -m socklab.bench run [--quick] [--out results] [--image TAG]
    python -m socklab.bench report results/bench-<timestamp>   # report.md and plots again
    python -m socklab.bench sweep RUN_ID|all                   # what a killed run left
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from socklab.bench.grid import FULL, QUICK


def _image(given: str | None) -> str:
    if given:
        return given
    if os.environ.get("SOCKLAB_IMAGE"):
        return os.environ["SOCKLAB_IMAGE"]
    from socklab.build import ensure_images

    return ensure_images()


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="python -m socklab.bench", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run every workload, write results/bench-<time>/")
    run.add_argument("--quick", action="store_true", help="a few cells, small N (< 2 min)")
    run.add_argument("--out", default="results", help="parent directory (default: results)")
    run.add_argument("--image", help="lab image (default: $SOCKLAB_IMAGE, else build)")
    report = commands.add_parser("report", help="render report.md and the plots again")
    report.add_argument("directory")
    sweep = commands.add_parser("sweep", help="remove a bench run's containers and network")
    sweep.add_argument("run_id", help="a run id, or 'all'")
    args = top.parse_args(argv)
    if args.command == "run":
        from socklab.bench.orchestrate import run as run_bench

        try:
            out = run_bench(QUICK if args.quick else FULL, _image(args.image), Path(args.out))
        except KeyboardInterrupt:
            print("\nsocklab bench: interrupted; its containers were removed", file=sys.stderr)
            return 130
        print(f"socklab bench: {out}/report.md", file=sys.stderr)
        print(out)
        return 0
    if args.command == "report":
        from socklab.bench import plots
        from socklab.bench import report as render

        directory = Path(args.directory)
        results = json.loads((directory / "results.json").read_text())
        (directory / "report.md").write_text(render.render(results,
                                                           plots.write_all(results, directory)))
        return 0
    import docker

    from socklab.bench.lab import sweep as sweep_run

    removed = sweep_run(docker.from_env(), "" if args.run_id == "all" else args.run_id)
    print(f"socklab bench: removed {removed} containers/networks/volumes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
