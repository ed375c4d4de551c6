"""The one command: ``socklab serve VARIANT``, ``socklab client VARIANT``.

Server and client code is imported only for the command that runs, so
``--help`` is fast and the host needs nothing but the standard library.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from socklab.registry import VARIANTS
from socklab.servers.base import DEFAULT_IDLE_TIMEOUT

EXEC = VARIANTS["exec"]

EPILOG = "Host names, ports and wire formats: docs/protocols.md (the lab contract)."


def _add_serve(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = commands.add_parser("serve", help="run one server variant (in the foreground)",
                                description="Run one server variant. It logs one line per "
                                "connection event and stops cleanly on SIGTERM.")
    variants = serve.add_subparsers(dest="variant", required=True, metavar="VARIANT")
    for variant in VARIANTS.values():
        sub = variants.add_parser(variant.name, help=variant.summary, description=variant.summary)
        sub.add_argument("--host", default="0.0.0.0", help="address to bind (default: %(default)s)")
        sub.add_argument("--port", type=int, default=variant.main_port,
                         help="port to listen on (default: %(default)s)")
        if variant.transport == "tcp":
            sub.add_argument("--backlog", type=int, default=128,
                             help="listen backlog; the kernel caps it at net.core.somaxconn "
                             "(default: %(default)s)")
            sub.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT,
                             metavar="SECONDS", help="disconnect a client silent this long; "
                             "0 never does (default: %(default)s)")
    _variant_options(variants)


def _variant_options(variants: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    epoll = variants.choices["epoll"]
    epoll.add_argument("--edge", action="store_true", help="edge-triggered (EPOLLET) mode")
    exec_ = variants.choices["exec"]
    exec_.add_argument("--handshake-port", type=int, default=EXEC.port("handshake"),
                       help="port of the Ready|n / start framing (default: %(default)s)")
    exec_.add_argument("--framed-port", type=int, default=EXEC.port("framed"),
                       help="port of the length-prefixed framing (default: %(default)s)")
    exec_.add_argument("--run-as", default=None, metavar="USER",
                       help="unprivileged user the commands run as (required when root)")
    exec_.add_argument("--workdir", default=".", help="the commands' working directory")
    exec_.add_argument("--timeout", type=float, default=EXEC.caps["timeout_s"],
                       help="seconds before a command's process group is killed")
    exec_.add_argument("--max-commands", type=_at_least_one, default=EXEC.caps["commands"],
                       metavar="N",
                       help="commands that may run or hold their output at once; the memory "
                       "bound (default: %(default)s)")
    exec_.add_argument("--slot-wait", type=float, default=EXEC.caps["slot_wait_s"],
                       metavar="SECONDS",
                       help="how long a command waits for a free slot before the client is "
                       "told the server is busy (default: %(default)s)")
    exec_.epilog = ("With SOCKLAB_EXEC_TOKEN set in the environment (16 bytes or more), "
                    "the handshake and framed ports require a challenge-response proof of the "
                    "token and the naive port is not opened. See docs/protocols.md.")
    ftp = variants.choices["ftp"]
    ftp.add_argument("--upload-dir", default="/srv/uploads", help="where uploads are stored")
    ftp.add_argument("--max-size", type=int, default=VARIANTS["ftp"].caps["file"],
                     help="largest upload in bytes (default: %(default)s)")
    ftp.add_argument("--page-cache-only", action="store_true",
                     help="write every upload through the page cache, as a plain server "
                     "does (the grader's reference); by default one of 8 MiB or more is "
                     "written with O_DIRECT")


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _add_client(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    client = commands.add_parser("client", help="talk to a server from a client host",
                                 description="Interactive clients, like the tutorial's: "
                                 "type a line, read the answer, 'exit' to leave.")
    variants = client.add_subparsers(dest="variant", required=True, metavar="VARIANT")
    for variant in VARIANTS.values():
        sub = variants.add_parser(variant.name, help=f"client of {variant.host}")
        sub.add_argument("--host", default=variant.host, help="server (default: %(default)s)")
        sub.add_argument("--port", type=int, default=None,
                         help=f"server port (default: {variant.main_port})")
    exec_ = variants.choices["exec"]
    exec_.add_argument("--mode", choices=tuple(EXEC.ports), default="handshake",
                       help="framing: " + ", ".join(f"{name}={port}" for name, port
                                                    in EXEC.endpoints)
                       + " (default: %(default)s)")
    exec_.add_argument("-c", "--command", action="append", default=[],
                       help="run this command and exit (repeatable) instead of prompting")
    exec_.add_argument("--token-file", metavar="PATH",
                       help="file holding the exec server's token (default: the "
                       "SOCKLAB_EXEC_TOKEN environment variable; never put it on the "
                       "command line)")
    ftp = variants.choices["ftp"]
    ftp.add_argument("action", nargs="?", choices=("put", "get", "ls"),
                     help="upload, download or list; without it, a prompt taking the same "
                     "commands")
    ftp.add_argument("names", nargs="*", help="files to put, or names to get")
    ftp.add_argument("-o", "--output", help="where to save a single get")


def _add_probe(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from socklab import probes

    probe = commands.add_parser("probe", help="run a scenario's client side; prints JSON",
                                description="Scenario drivers for a client host. Each prints "
                                "one JSON object with what it measured.")
    names = probe.add_subparsers(dest="probe", required=True, metavar="PROBE")
    for name in probes.PROBES:
        module = probes.load(name)
        sub = names.add_parser(name, help=module.HELP, description=module.__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)


def _add_hold(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    hold = commands.add_parser("hold", help="listen without accepting until SIGUSR1",
                               description="Listen, accept nothing until SIGUSR1, then serve "
                               "the upper-case echo: the server side of the backlog scenario.")
    hold.add_argument("--host", default="0.0.0.0")
    hold.add_argument("--port", type=int, default=VARIANTS["tcp"].main_port,
                      help="port to listen on (default: %(default)s, tcp-server's)")
    hold.add_argument("--backlog", type=int, default=5)
    hold.add_argument("--socketserver", action="store_true",
                      help="listen as socketserver.TCPServer does (its request_queue_size, 5)")


def _add_delay(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    delay = commands.add_parser("delay", help="delay every packet this host sends (root)",
                                description="Delay every packet leaving by DEVICE, until "
                                "stopped (Ctrl-C or SIGTERM): netem's delay, done with "
                                "iptables NFQUEUE. Needs root and NET_ADMIN.")
    delay.add_argument("--ms", type=float, required=True, help="delay in milliseconds")
    delay.add_argument("--device", default="eth0", help="(default: %(default)s)")
    delay.add_argument("--queue", type=int, default=0, help="NFQUEUE number (default: 0)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="socklab", description="socklab: a network "
                                  "programming lab of servers, clients and probes.", epilog=EPILOG)
    # dest is not "command": an option of a subcommand (exec -c/--command) shares the namespace
    commands = top.add_subparsers(dest="socklab_command", required=True, metavar="COMMAND")
    _add_serve(commands)
    _add_client(commands)
    _add_probe(commands)
    _add_hold(commands)
    _add_delay(commands)
    return top


def run_serve(args: argparse.Namespace) -> int:
    from socklab import log as lablog
    from socklab.protocol.auth import TokenError
    from socklab.runner import RunAsRootError
    from socklab.variants import SERVE

    log = lablog.setup(VARIANTS[args.variant].host)
    try:
        SERVE[args.variant](args, log)
    except (OSError, RunAsRootError, TokenError, KeyError) as error:
        log.error("cannot serve: %s", error)
        return 1
    return 0


def run_client(args: argparse.Namespace) -> int:
    from socklab.clients import interactive as ui

    variant = VARIANTS[args.variant]
    port = args.port or (variant.port(args.mode) if variant.name == "exec" else variant.main_port)
    actions = {
        "udp": lambda: ui.udp_repl(args.host, port),
        "exec": lambda: ui.exec_repl(args.host, port, args.mode, args.command, args.token_file),
        "ftp": lambda: ui.ftp_command(args.host, port, args.action, args.names, args.output),
    }
    default = lambda: ui.echo_repl(args.host, port, bool(variant.greeting))  # noqa: E731
    return ui.run_safely(actions.get(variant.name, default))


def run_probe(args: argparse.Namespace) -> int:
    import json

    from socklab import probes

    try:
        result = probes.load(args.probe).run(args)
    except (OSError, KeyError) as error:
        print(f"socklab probe {args.probe}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def run_hold(args: argparse.Namespace) -> int:
    from socklab import log as lablog
    from socklab.servers.hold import serve_hold

    log = lablog.setup("hold")
    try:
        serve_hold(args.host, args.port, args.backlog, args.socketserver, log)
    except OSError as error:
        log.error("cannot listen: %s", error)
        return 1
    return 0


def run_delay(args: argparse.Namespace) -> int:
    import subprocess

    from socklab import log as lablog
    from socklab.delay import run_delay as delay

    log = lablog.setup("delay")
    try:
        delay(args.ms, args.device, args.queue, log)
    except (OSError, subprocess.CalledProcessError) as error:
        log.error("cannot delay: %s (needs root, NET_ADMIN and iptables)", error)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    runners = {"serve": run_serve, "client": run_client, "probe": run_probe, "hold": run_hold,
               "delay": run_delay}
    return runners[args.socklab_command](args)


if __name__ == "__main__":
    sys.exit(main())
