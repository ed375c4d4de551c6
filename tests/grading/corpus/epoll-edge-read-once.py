# variant: epoll
# kind: buggy
# mistake: edge-triggered epoll (EPOLLET) but only one recv() per event: what that recv
#   leaves in the socket gets no new event, so long messages (and the EOF behind them)
#   are never read in full
# expect-fail: conformance.sizes conformance.half-close robustness.slow-reader
"""epoll-server for socklab: hello, then the echo in upper case.

Edge-triggered epoll because it is supposed to be faster: the kernel tells me
once when something changes instead of every time I ask.
"""

import select
import socket

PORT = 9000
GREETING = b"hello"
LIMIT = 1 << 20  # answer bytes I keep for one client before I stop reading it

# Notes after running the grader's checks by hand (local calibration): messages up to a
# few kB (glued's 1,900 bytes, split's single bytes) come in one recv(4096) and pass;
# 64 KiB and more are cut.


def main():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("", PORT))
    server.listen(4096)
    server.setblocking(False)

    ep = select.epoll()
    ep.register(server.fileno(), select.EPOLLIN)  # level-triggered for accepting
    socks = {}  # fd -> socket
    out = {}  # fd -> bytearray still to send
    eof = set()  # fds whose client sent EOF
    paused = set()  # fds I stopped reading because their answer piled up

    def close(fd):
        ep.unregister(fd)
        socks.pop(fd).close()
        out.pop(fd)
        eof.discard(fd)
        paused.discard(fd)

    def read_some(fd):
        # One recv per event: the event said there is data, so I read it.
        try:
            data = socks[fd].recv(4096)
        except BlockingIOError:
            return
        except OSError:
            close(fd)
            return
        if not data:
            eof.add(fd)
            if not out[fd]:
                close(fd)
            return
        out[fd] += data.upper()
        if len(out[fd]) >= LIMIT:
            paused.add(fd)
        flush(fd)

    def flush(fd):
        # Edge-triggered: write until the kernel says "would block".
        while out[fd]:
            try:
                sent = socks[fd].send(out[fd])
            except BlockingIOError:
                return
            except OSError:
                close(fd)
                return
            del out[fd][:sent]
        if fd in eof:
            close(fd)
        elif fd in paused:
            paused.discard(fd)
            read_some(fd)  # there may be data waiting that got no event

    while True:
        for fd, events in ep.poll():
            if fd == server.fileno():
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                socks[conn.fileno()] = conn
                out[conn.fileno()] = bytearray(GREETING)
                ep.register(conn.fileno(), select.EPOLLIN | select.EPOLLOUT | select.EPOLLET)
                continue
            if fd not in socks:
                continue
            if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR) and fd not in paused \
                    and fd not in eof:
                read_some(fd)
            if fd in socks and events & select.EPOLLOUT:
                flush(fd)


if __name__ == "__main__":
    main()
