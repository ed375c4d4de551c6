# variant: tcp
# kind: buggy
# mistake: takes recv() returning b'' for "nothing yet" and keeps calling it: when the first
#   client leaves, the server spins forever on its dead socket, never closes it and never
#   accepts the next client
# expect-fail: conformance.echo conformance.bytes conformance.sizes conformance.glued
#   conformance.split conformance.half-close conformance.tutorial-client concurrency.sequential
#   robustness.reset robustness.vanish robustness.slow-reader robustness.fuzz resources.fd-leak
#   resources.memory resources.threads
"""tcp-server for socklab: blocking, one client at a time, upper-case echo."""

import socket

# Notes after running the grader's checks by hand (local calibration): the first check
# (conformance.greeting) connects, waits for nothing and leaves: it passes, and from then on
# the server is stuck on that socket, so every later check fails.


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", 9000))
    sock.listen(5)
    while True:
        conn, addr = sock.accept()
        print("client", addr, flush=True)
        while True:
            try:
                data = conn.recv(4096)
            except ConnectionResetError:
                break
            if not data:
                continue  # nothing arrived yet, try again
            conn.sendall(data.upper())
        conn.close()


if __name__ == "__main__":
    main()
