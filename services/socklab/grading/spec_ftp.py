"""The checks of the ftp variant: the learner spec of docs/exercises/14-write-your-own-ftp.md.

Pure data (``socklab.grading.check.Check``); the bodies are ``socklab.grading.ftp``,
except ``performance.throughput``, which the host's grader measures (one upload of
``THROUGHPUT_UPLOAD`` bytes, against the lab's own server). They run in this order against one
server process and one upload directory: ``security.links`` plants its links
(``setup``) late, so that no earlier check meets them.
"""

from __future__ import annotations

from socklab.grading.check import TUTORIAL_CLIENT_POINTS, Check

# The upload performance.throughput times, on the learner's server and on the lab's:
# 64 MiB took ~0.15 s, too short to measure steadily (ratios 0.95-1.54 for servers alike).
THROUGHPUT_UPLOAD = 256 << 20

FTP_CHECKS: tuple[Check, ...] = (
    Check("conformance.banner", 3, "sends one banner line on connect, then waits for a request",
          "A client reads the banner up to its \\n before its first request: send exactly "
          "one line, and nothing else unasked.", "ftp"),
    Check("conformance.put-get", 8,
          "files of 1 B, 1 MiB and 0 B are put (200, then 201 with their sha256) and got back "
          "byte for byte",
          "After a put's 200, read exactly filesize bytes (none for 0), then answer 201 with "
          "their sha256; a get's 200 carries filesize and is followed by exactly that many.",
          "ftp"),
    Check("conformance.list", 5, "lists the files put, sorted by name, with their sizes",
          "list answers every regular file of the upload directory as {\"name\", \"size\"}, "
          "sorted by name; a put of a name that exists replaces its file.", "ftp"),
    Check("conformance.split", 5, "answers a put and a get sent a byte at a time",
          "A request can arrive in many recvs: keep what came and parse once the JSON object "
          "is complete; an incomplete object is not a bad one.", "sticky"),
    Check("conformance.glued", 5,
          "a request glued to a put's last byte, and two requests in one send, are answered",
          "Exactly filesize bytes are the file: what follows in the same recv is the next "
          "request. Keep the rest of the buffer; never read more than you need.", "sticky"),
    Check("conformance.errors", 6,
          "bad JSON and unknown actions get 400, a missing file 404, and the connection goes on",
          "Answer every request, even a wrong one: a 400 or 404 line, then read the next "
          "request. Bytes that cannot start a JSON object are a bad request, not a wait.",
          "ftp"),
    Check("conformance.tutorial-client", TUTORIAL_CLIENT_POINTS,
          "`socklab client ftp` at its prompt, on one connection: put a file, ls shows it, "
          "get brings it back",
          "The lab's client reads the banner line, then for each command sends one JSON "
          "request and reads its answers (a put's 200 and 201, a list, a get's 200 and its "
          "bytes) on the same connection: answer each request, then read the next.", "ftp",
          budget=45.0),
    Check("concurrency.two-uploads", 8, "two clients upload 4 MiB each at the same time",
          "A server that serves one client until it leaves makes the second wait: a thread "
          "per client (socketserver.ThreadingTCPServer) or an event loop.", "blocking"),
    Check("concurrency.silent-client", 5,
          "three clients that stall (silent, mid-request, mid-upload) do not stall a fourth",
          "Never let one client's recv hold up the others: each client waits on its own.",
          "blocking"),
    Check("robustness.cut-upload", 5,
          "an upload cut short by a reset or a close leaves no file under its name",
          "A file appears under its name only when all of it has arrived: write to a "
          "temporary name and rename it at the end, and remove it when the client is gone.",
          "ftp"),
    Check("robustness.vanish", 5,
          "50 clients that leave at once, some owed 1 MiB: the same process serves the next",
          "A client can leave before its answer: a send to it raises BrokenPipeError or "
          "ConnectionResetError; end that client only.", "fuzz"),
    Check("robustness.fuzz", 5,
          "300 malformed or abrupt connections from the fuzzer: a correct client is still "
          "served by the same process",
          "Any bytes, any JSON, any size, any way of leaving: nothing a client sends may end "
          "the server.", "fuzz", budget=90.0),
    Check("resources.fd-leak", 5, "no descriptor left open after 300 connections close",
          "Every accepted socket and every file opened for a get or a put must be closed "
          "when its client leaves, however it leaves (with blocks help).", "ftp",
          sample=True, budget=60.0),
    Check("resources.threads", 3, "no thread left behind after 100 connections close",
          "A thread per client must end with its client.", "blocking", sample=True),
    Check("security.names", 10,
          "names that are not plain file names (../escape, /etc/passwd, a/b, .., ., empty, "
          "NUL) get 400 on put and get",
          "A name goes into a path: refuse any with a / or NUL, empty, . or .. before the "
          "file system sees it, or a client reads and writes outside /srv/uploads.", "ftp"),
    Check("security.links", 8,
          "symbolic links in the upload directory: a get gets 404, a put 409, the list omits "
          "them",
          "A planted link leads elsewhere (/etc/passwd): look at the entry itself (lstat, "
          "O_NOFOLLOW), serve and replace regular files only.", "ftp", setup="plant-links"),
    Check("security.size-cap", 5,
          "a put above 4 GiB gets 413, a filesize that is no whole number 400, before any data",
          "Check what a client announces before you accept it: a size limit, and a size "
          "that is a whole number >= 0.", "ftp"),
    Check("performance.throughput", 5,
          f"MiB/s of a {THROUGHPUT_UPLOAD >> 20} MiB upload against the lab's own server, "
          "in bands",
          "Read and write in large chunks (64 KiB or more), and hash as you go; measure "
          "before you optimise.", "ftp", budget=120.0),
)
