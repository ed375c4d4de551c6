"""The checks of the exec variant: the learner spec of docs/exercises/13-write-your-own-exec.md.

Pure data (``socklab.grading.check.Check``); the bodies are ``socklab.grading.exec``,
except ``performance.throughput``, which the host's grader measures. The
``resources.*`` checks only make traffic: the host samples the server and judges.
"""

from __future__ import annotations

from socklab.grading.check import TUTORIAL_CLIENT_POINTS, Check
from socklab.grading.verdict import size
from socklab.registry import EXEC_OUTPUT_CAP, EXEC_TIMEOUT, VARIANTS

# The three ports, by framing, as the registry gives them: the texts below name them
# from here, never in figures of their own.
PORTS = VARIANTS["exec"].ports
NAIVE, HANDSHAKE, FRAMED = PORTS["naive"], PORTS["handshake"], PORTS["framed"]

EXEC_CHECKS: tuple[Check, ...] = (
    Check("conformance.naive", 6,
          "naive port: a banner line, then each command's stdout, its stderr, or one line",
          f"On {NAIVE} every chunk read is a command and the reply is its output with no "
          "framing at all: stdout, or stderr when stdout is empty, or one line when both "
          "are, so a client that waits for a reply never hangs.", "exec"),
    Check("conformance.handshake", 6,
          "handshake port: Ready|<n>|<status>, nothing until start, then exactly n bytes",
          "Send the header, then wait: the output goes only once the client has said "
          "start, and an empty output is still Ready|0|0 (and a start).", "exec"),
    Check("conformance.framed", 8,
          "framed port: a JSON header, then stdout, then stderr, each one frame",
          f"Every message on {FRAMED} is a 4-byte big-endian length and that many bytes: read "
          "exactly 4, then exactly the length, never what one recv happens to return.",
          "exec"),
    Check("conformance.big-output", 8,
          f"a 10 MiB output arrives whole, and nothing more, on {HANDSHAKE} and on {FRAMED}",
          "A reply of megabytes leaves in many TCP segments: send all of it (sendall), "
          "exactly as many bytes as the header announced.", "sticky", budget=60.0),
    Check("conformance.pipelined", 5,
          "three framed requests in one send: three replies, in order",
          "One recv can hold several frames: answer every whole frame in the buffer, one "
          "after the other, and keep the rest for the next recv.", "sticky"),
    Check("conformance.bad-request", 5,
          "a request that is not UTF-8 JSON with a string cmd: an error reply, and the "
          "connection goes on",
          "A bad request is the client's mistake, not the end of the connection: answer "
          "{\"error\": ..., \"exit_status\": null} with two empty frames, read the next.",
          "exec"),
    Check("conformance.tutorial-client", TUTORIAL_CLIENT_POINTS,
          f"`socklab client exec` --mode handshake ({HANDSHAKE}): seq 1 2000, true, an exit "
          f"status; --mode framed ({FRAMED}): stdout, stderr and status apart",
          "The tutorial's handshake client reads the Ready header with one recv(1024), sends "
          "start, then reads exactly n bytes; the lab's framed client reads three frames. Send "
          "a header alone, in one send, and nothing before start.", "exec", budget=60.0),
    Check("concurrency.parallel", 10,
          "two clients' sleep 3 run at once, and a third client's echo is not kept waiting",
          "A command takes as long as it takes: run each client's command while you serve "
          "the others (a thread per client, or a loop that watches the pipes too).",
          "blocking"),
    Check("robustness.reset", 5,
          "clients reset in the middle of a request or an output: the same process serves "
          "the next",
          "A reset makes recv or send raise ConnectionResetError: catch it, end that "
          "client's command, close its socket, and keep serving the others.", "fuzz"),
    Check("robustness.vanish", 5,
          "30 clients that connect and leave at once: the same process serves the next",
          "A client can close before its banner or its output: a send to it raises "
          "BrokenPipeError or ConnectionResetError; drop that client only.", "fuzz"),
    Check("robustness.fuzz", 5,
          "300 malformed or abrupt connections from the fuzzer, 100 per port: a correct "
          "client is still served by the same process",
          "Any bytes, any size, any way of leaving: nothing a client sends may end the "
          "server.", "fuzz", budget=90.0),
    Check("security.not-root", 10, "commands run as runner (uid and gid 1001), never as root",
          "The server may be root; its commands never: switch the child to runner "
          "(setgid, then setuid; Popen's user= and group=) before it execs the shell.",
          "exec"),
    Check("security.output-cap", 5,
          f"a 40 MiB output is cut at {size(EXEC_OUTPUT_CAP)} and marked truncated; the server "
          "keeps serving",
          "Read at most the cap, then stop the command: an output kept whole could be "
          "larger than the server's memory.", "exec", budget=75.0),
    Check("security.time-limit", 5,
          f"sleep 1000 is killed at the {EXEC_TIMEOUT:.0f} s limit: status -9, timed_out true",
          "Wait for a command with a deadline and kill its process group (SIGKILL) when "
          "the deadline passes; a client must never wait forever.", "exec", budget=50.0),
    Check("resources.fd-leak", 5, "no descriptor left open after 300 connections close",
          "Close every accepted socket when its client leaves, and both pipes of every "
          "command once it ends: a leak ends in EMFILE.", "exec", sample=True, budget=60.0),
    Check("resources.threads", 3, "no thread left behind after 100 connections close",
          "A thread per client (or per command) must end with it.", "blocking", sample=True,
          budget=60.0),
    Check("performance.throughput", 5,
          "commands/s on the framed port, one client, against the lab's own server, in bands",
          "A command costs a process: fork, exec, wait. Keep the rest small: no sleep "
          "polling, no thread started per read.", "exec", budget=120.0),
)
