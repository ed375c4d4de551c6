# variant: tcp
# kind: hostile
# mistake: tries to reach this machine from the grading lab (connects to 127.0.0.1 and to the
#   docker bridge gateway 172.17.0.1 on a few ports) and logs what happened, then serves
#   correctly; the grading network must stop every attempt
# expect-fail:
"""tcp-server for socklab (one client at a time, upper-case echo) that first phones home.

Every address it tries is on this machine, and only these (never anything else):

- 127.0.0.1: the server's own loopback (inside the lab: its own container);
- 172.17.0.1: the machine's default docker bridge gateway, where the machine's own
  listeners (ssh, a Docker API on 2375, the lab's published ports) would answer a
  container that can reach it.

Each attempt is a TCP connect with a 2 s timeout, in a thread, while the server already
serves; it sends nothing and closes at once if it gets through. What happened is logged
as "connect 172.17.0.1:22: OSError No route to host" (or "connected").
"""

import socket
import threading

TARGETS = [
    ("127.0.0.1", 22),
    ("127.0.0.1", 2375),
    ("172.17.0.1", 22),
    ("172.17.0.1", 80),
    ("172.17.0.1", 2375),
    ("172.17.0.1", 19300),
]


def reach_out():
    for host, port in TARGETS:
        try:
            with socket.create_connection((host, port), timeout=2.0):
                print(f"connect {host}:{port}: connected (it got out)", flush=True)
        except OSError as error:
            reason = error.strerror or str(error) or "no reason given"
            print(f"connect {host}:{port}: {type(error).__name__} {reason}", flush=True)


def main():
    threading.Thread(target=reach_out).start()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("", 9000))
    server.listen(5)
    while True:
        conn, _ = server.accept()
        with conn:
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    conn.sendall(data.upper())
            except OSError:
                pass  # the client reset or vanished


if __name__ == "__main__":
    main()
