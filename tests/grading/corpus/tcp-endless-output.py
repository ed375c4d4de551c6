# variant: tcp
# kind: hostile
# mistake: prints without end to stdout from a second thread while it serves correctly: the
#   grader must keep only a capped log and the disk must not fill; nothing else should fail
# expect-fail:
"""tcp-server for socklab (blocking, one client at a time, upper-case echo) that also
prints debugging noise as fast as it can, forever.
"""

import itertools
import socket
import threading

NOISE = "debug: still alive, still printing, " + "." * 60


def chatter():
    for n in itertools.count():
        print(n, NOISE)  # stdout is a pipe: block-buffered, 8 KiB at a time


def main():
    threading.Thread(target=chatter, daemon=True).start()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("", 9000))
    server.listen(5)
    while True:
        conn, _ = server.accept()
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data.upper())
            except OSError:
                pass  # reset or broken pipe: next client


if __name__ == "__main__":
    main()
