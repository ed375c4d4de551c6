# variant: select
# kind: correct
# mistake: written with select.poll and flat dicts of byte buffers keyed by descriptor,
#   instead of select.select on lists of sockets; it pauses accepting while out of
#   descriptors rather than refusing
# expect-fail:
"""An upper-casing echo server on port 9000 with poll(): hello first, then every byte back.

No objects per client: three dicts keyed by the descriptor number hold the
socket, the bytes still owed to it, and whether it has sent EOF.
"""

import errno
import select
import socket
import time

PORT = 9000
GREETING = b"hello"
PAUSE_AT = 256 * 1024  # owed bytes past which a client's input is not read

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("", PORT))
listener.listen(128)
listener.setblocking(False)

poller = select.poll()
poller.register(listener, select.POLLIN)
socks = {}
owed = {}
eof = {}
accept_again = 0.0  # while out of descriptors: when to try accepting again


def watch(fd):
    mask = 0
    if not eof[fd] and len(owed[fd]) < PAUSE_AT:
        mask |= select.POLLIN
    if owed[fd]:
        mask |= select.POLLOUT
    if not mask:
        drop(fd)
    else:
        poller.modify(fd, mask)


def drop(fd):
    poller.unregister(fd)
    socks.pop(fd).close()
    del owed[fd], eof[fd]


def take_new():
    global accept_again
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE):
                poller.unregister(listener)  # it would wake me for ever; try in a moment
                accept_again = time.monotonic() + 0.1
            return
        conn.setblocking(False)
        fd = conn.fileno()
        socks[fd], owed[fd], eof[fd] = conn, bytearray(GREETING), False
        poller.register(fd, select.POLLOUT)


def serve(fd, events):
    conn = socks[fd]
    if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            data = None
        except OSError:
            drop(fd)
            return
        if data == b"":
            eof[fd] = True
        elif data:
            owed[fd] += data.upper()
    if owed[fd]:
        try:
            sent = conn.send(owed[fd])
        except BlockingIOError:
            sent = 0
        except OSError:
            drop(fd)
            return
        del owed[fd][:sent]
    watch(fd)


while True:
    timeout = None
    if accept_again:
        timeout = max(0, int((accept_again - time.monotonic()) * 1000))
    for fd, events in poller.poll(timeout):
        if fd == listener.fileno():
            take_new()
        elif fd in socks:
            serve(fd, events)
    if accept_again and time.monotonic() >= accept_again:
        accept_again = 0.0
        poller.register(listener, select.POLLIN)
