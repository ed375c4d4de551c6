"""Fuzzing: seeded malformed inputs against one server, a correct exchange after each batch.

``socklab probe fuzz --target ftp`` sends ``--inputs`` cases (1,000 by default)
to one server from a few concurrent connections: random bytes, invalid UTF-8,
messages just past the server's named size caps, truncated frames, frames
declaring huge lengths, JSON that parses but is wrong, partial handshakes and
mutations of valid messages. Each connection ends in one of three ways,
chosen by the case: a FIN (``close()``), an RST in the middle of the message
(``SO_LINGER`` 0), or a half-close (``shutdown(SHUT_WR)``) and a read to the
server's EOF. After every ``--batch`` cases a correct client runs one normal
exchange and checks the answer byte for byte: a robust server still answers
it, whatever came before.

A case is a pure function of (target, seed, index): ``make_case`` does no I/O,
so a case found by a run is replayed alone with ``--only INDEX``.

The report counts the connections the server closed or reset before the
fuzzer ended them (``dropped_by_server``), wrong answers seen while fuzzing
(``server_errors``) and the failed health checks with the index of the last
case before them (``failures``). A fuzzer-side timeout is counted as such,
never as a server failure. The server's own log (a traceback, a restart) is
read on the server's host, not here.

The package: ``targets`` (every port of ``socklab.registry``), ``families/``
(one class per protocol family: its kinds of case, its judge, its health
check), ``cases`` (pure), ``play`` (the sockets), ``judging``, ``tally`` (the
run) and ``cli`` (these arguments and the JSON).
"""

from __future__ import annotations

from socklab.probes.fuzz.cli import HELP, NAME, add_arguments, run

__all__ = ["HELP", "NAME", "add_arguments", "run"]
