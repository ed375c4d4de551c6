# variant: epoll
# kind: buggy
# mistake: answers with a blocking sendall() inside the epoll loop: a client that sends a
#   lot and never reads fills the kernel's buffers, sendall() waits for it and every other
#   client waits too
# expect-fail: concurrency.slow-client
"""epoll-server for socklab: hello, then the upper-cased echo, one thread."""

import select
import socket

PORT = 9000
GREETING = b"hello"

# Notes after running the grader's checks by hand (local calibration): a single slow
# reader (robustness.slow-reader) is fine, it is the only client; resources.memory's six
# flooding clients stall the loop too, but memory stays small, so that check passes.


def main():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", PORT))
    server.listen(4096)

    poller = select.epoll()
    poller.register(server.fileno(), select.EPOLLIN)
    clients = {}

    def drop(fd):
        poller.unregister(fd)
        clients.pop(fd).close()

    while True:
        for fd, _event in poller.poll():
            if fd == server.fileno():
                conn, _ = server.accept()
                try:
                    conn.sendall(GREETING)
                except OSError:
                    conn.close()
                    continue
                clients[conn.fileno()] = conn
                poller.register(conn.fileno(), select.EPOLLIN)
                continue
            conn = clients[fd]
            try:
                data = conn.recv(65536)
                if data:
                    conn.sendall(data.upper())  # small answers go out at once anyway
                else:
                    drop(fd)
            except OSError:
                drop(fd)


if __name__ == "__main__":
    main()
