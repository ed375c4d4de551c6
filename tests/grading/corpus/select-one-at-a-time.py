# variant: select
# kind: buggy
# mistake: serves one client at a time: select() watches only the listening socket, then
#   the accepted client is served with blocking recv/sendall until it leaves
# expect-fail: concurrency.many-clients concurrency.silent-client concurrency.slow-client
#   concurrency.one-thread resources.memory resources.threads
"""select-server for socklab: hello, then the upper-cased echo.

I use select() to wait until a client is there, then serve it until it is done.
"""

import select
import socket

PORT = 9000
GREETING = b"hello"

# Notes after running the grader's checks by hand (local calibration):
# - concurrency.fd-wall passes: the 1,100 connections wait in the backlog, the one
#   being served is greeted and answered, and the rest are accepted and closed quickly
#   once the clients have gone, so a new client is then served.
# - resources.memory and resources.threads fail because they connect several clients at
#   once and each expects its greeting before the next connects.
# - robustness.fuzz: the fuzzer's cases wait in the backlog (its timeouts are its own),
#   and its health checks come when the batch is over: passes (unsure on the real grader).


def serve(conn):
    """Talk to one client until it closes (blocking calls: nobody else gets served)."""
    conn.sendall(GREETING)
    while True:
        data = conn.recv(65536)
        if not data:
            break
        conn.sendall(data.upper())


def main():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("", PORT))
    server.listen(1024)
    print("listening on port", PORT, flush=True)
    while True:
        ready, _, _ = select.select([server], [], [])
        if server not in ready:
            continue
        conn, address = server.accept()
        try:
            serve(conn)
        except OSError as error:  # reset or broken pipe: on to the next client
            print("client", address, "went away:", error, flush=True)
        finally:
            conn.close()


if __name__ == "__main__":
    main()
