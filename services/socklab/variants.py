"""How each server variant is served: ``socklab serve VARIANT``.

Where a variant runs and what it says is the registry's (``socklab.registry``);
each ``serve_*`` function here only builds the listener and picks the loop and
the session.
"""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from socklab import runner
from socklab.registry import VARIANTS
from socklab.servers.base import open_listener, stop_on_signals
from socklab.sessions.echo import Echo, UpperEcho

if TYPE_CHECKING:
    from socklab.protocol.auth import AuthFraming
    from socklab.sessions import Session


def idle(args: argparse.Namespace) -> float | None:
    """The --idle-timeout in force; None when it is 0 (never)."""
    return args.idle_timeout or None


def serve_tcp(args: argparse.Namespace, log: logging.Logger) -> None:
    from socklab.servers.blocking import serve_blocking

    listener = open_listener(args.host, args.port, args.backlog)
    log.info("listen %s:%d backlog=%d (one client at a time)", args.host, args.port, args.backlog)
    with listener, stop_on_signals(log):
        serve_blocking(listener, UpperEcho, log, idle(args))


def serve_udp(args: argparse.Namespace, log: logging.Logger) -> None:
    import socket

    from socklab.servers.udp import serve_udp as loop

    sock = open_listener(args.host, args.port, kind=socket.SOCK_DGRAM)
    log.info("listen udp %s:%d", args.host, args.port)
    with sock, stop_on_signals(log):
        loop(sock, log)


def serve_readiness(args: argparse.Namespace, log: logging.Logger) -> None:
    from socklab.servers import readiness

    poller: readiness.Poller = (readiness.EpollPoller(args.edge) if args.variant == "epoll"
                                else readiness.SelectPoller())
    listener = open_listener(args.host, args.port, args.backlog)
    mode = " edge-triggered" if poller.edge_triggered else ""
    log.info("listen %s:%d backlog=%d poller=%s%s", args.host, args.port, args.backlog,
             poller.name, mode)
    greeting = VARIANTS[args.variant].greeting
    server = readiness.ReadinessServer(listener, functools.partial(UpperEcho, greeting), poller,
                                       log, idle(args))
    with listener, stop_on_signals(log):
        try:
            server.serve_forever()
        finally:
            server.close()


def serve_twisted(args: argparse.Namespace, log: logging.Logger) -> None:
    from socklab.servers.twisted_server import serve_twisted as loop

    log.info("listen %s:%d backlog=%d reactor=twisted", args.host, args.port, args.backlog)
    loop(args.host, args.port, args.backlog, Echo, log, idle(args))


def serve_ftp(args: argparse.Namespace, log: logging.Logger) -> None:
    from socklab.servers.threaded import SessionServer, serve_threaded
    from socklab.sessions.ftp import FtpSession
    from socklab.storage import UploadDir

    uploads = UploadDir(Path(args.upload_dir), direct=not args.page_cache_only)
    swept = uploads.sweep_partials()
    new_session = functools.partial(FtpSession, uploads, args.max_size)
    server = SessionServer((args.host, args.port), new_session, log, args.backlog, idle(args))
    log.info("listen %s:%d backlog=%d uploads=%s swept_partials=%d%s", args.host, args.port,
             args.backlog, args.upload_dir, swept,
             " page_cache_only" if args.page_cache_only else "")
    serve_threaded([server], log)


def serve_exec(args: argparse.Namespace, log: logging.Logger) -> None:
    import os

    from socklab.protocol import auth
    from socklab.servers.threaded import SessionServer, serve_threaded

    token = auth.load_token(os.environ.get(auth.TOKEN_VARIABLE))
    slots = runner.CommandSlots(args.max_commands, args.slot_wait)
    command_runner = runner.CommandRunner(Path(args.workdir).resolve(),
                                          runner.resolve_user(args.run_as), timeout=args.timeout,
                                          slots=slots)
    servers: list[SessionServer] = []
    try:
        for port, name, factory in exec_sessions(args, command_runner, token):
            servers.append(SessionServer((args.host, port), factory, log, args.backlog,
                                         idle(args)))
            log.info("listen %s:%d framing=%s", args.host, port, name)
    except BaseException:
        for server in servers:
            server.server_close()
        raise
    log.info("commands run as uid=%s in %s, timeout %.0fs, at most %d at once (wait %.0fs "
             "for a slot), output cap %d bytes", command_runner.uid or "self", command_runner.cwd,
             args.timeout, slots.count, slots.wait, command_runner.output_cap)
    if token:
        log.info("token set (%s): %d and %d require a proof of it; %d (naive) is not opened",
                 auth.TOKEN_VARIABLE, args.handshake_port, args.framed_port, args.port)
    else:
        log.info("no token (%s unset): anyone on the lab network may run commands",
                 auth.TOKEN_VARIABLE)
    try:
        serve_threaded(servers, log)
    finally:
        command_runner.kill_all()  # no command outlives the server


def exec_sessions(args: argparse.Namespace, command_runner: runner.CommandRunner,
                  token: bytes | None) -> list[tuple[int, str, Callable[[], object]]]:
    """(port, framing name, session factory) of each exec port to open.

    With a token, the handshake and framed ports put the challenge–response
    first and the naive port is not opened at all: its chunks have no framing
    a proof could travel in.
    """
    from socklab.protocol.auth import FRAMINGS
    from socklab.sessions.exec import FramedExec, HandshakeExec, NaiveExec

    ports = [(args.port, "naive", NaiveExec), (args.handshake_port, "handshake", HandshakeExec),
             (args.framed_port, "framed", FramedExec)]
    if token is None:
        return [(port, cls.__name__, functools.partial(cls, command_runner))
                for port, _, cls in ports]
    return [(port, f"{cls.__name__}+token",
             functools.partial(_authenticated, cls, command_runner, token, FRAMINGS[name]))
            for port, name, cls in ports if name in FRAMINGS]


def _authenticated(session_class: Callable[[runner.CommandRunner], Session],
                   command_runner: runner.CommandRunner, token: bytes,
                   framing: AuthFraming) -> Session:
    from socklab.sessions.exec import Authenticated

    return Authenticated(session_class(command_runner), token, framing)


SERVE: dict[str, Callable[[argparse.Namespace, logging.Logger], None]] = {
    "tcp": serve_tcp, "udp": serve_udp, "exec": serve_exec, "ftp": serve_ftp,
    "select": serve_readiness, "epoll": serve_readiness, "twisted": serve_twisted,
}
