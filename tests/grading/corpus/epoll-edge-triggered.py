# variant: epoll
# kind: correct
# mistake: edge-triggered epoll (EPOLLET) done right: every event is followed by reads until
#   EAGAIN (or until the answer backlog is full) and writes until EAGAIN, where socklab's own
#   server is level-triggered by default
# expect-fail:
"""epoll-server for socklab, edge-triggered: hello, then the upper-cased echo."""

import select
import socket

PORT = 9000
GREETING = b"hello"
BACKLOG_LIMIT = 1 << 20  # answer bytes held for a client before its reads stop

EDGE = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.out = bytearray(GREETING)
        self.eof = False


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("", PORT))
    listener.listen(4096)
    listener.setblocking(False)
    ep = select.epoll()
    ep.register(listener.fileno(), select.EPOLLIN | select.EPOLLET)
    conns = {}

    def close(fd):
        ep.unregister(fd)
        conns.pop(fd).sock.close()

    def pump(fd):
        """Read and write until the kernel has nothing more for us; False: close it."""
        conn = conns[fd]
        while True:
            while conn.out:
                try:
                    sent = conn.sock.send(conn.out)
                except BlockingIOError:
                    break
                except OSError:
                    return False
                del conn.out[:sent]
            if conn.eof:
                return bool(conn.out)  # close once everything is out
            if len(conn.out) >= BACKLOG_LIMIT:
                return True  # the next EPOLLOUT edge brings us back here
            try:
                data = conn.sock.recv(65536)
            except BlockingIOError:
                return True  # drained: wait for the next edge
            except OSError:
                return False
            if data:
                conn.out += data.upper()
            else:
                conn.eof = True

    while True:
        for fd, _events in ep.poll():
            if fd == listener.fileno():
                while True:  # edge-triggered: accept until there is nobody left
                    try:
                        sock, _ = listener.accept()
                    except OSError:  # BlockingIOError: nobody left
                        break
                    sock.setblocking(False)
                    conns[sock.fileno()] = Conn(sock)
                    ep.register(sock.fileno(), EDGE)
                    if not pump(sock.fileno()):
                        close(sock.fileno())
                continue
            if fd in conns and not pump(fd):
                close(fd)


if __name__ == "__main__":
    main()
