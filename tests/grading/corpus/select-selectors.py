# variant: select
# kind: correct
# mistake: written with the selectors module (selectors.SelectSelector, so select() underneath)
#   and one object per connection holding a queue of memoryviews, instead of calling
#   select.select on lists of sockets
# expect-fail:
"""select-server for socklab with the selectors module: hello, then the echo upper-cased.

selectors.DefaultSelector would be epoll on Linux; this exercise is about
select(), so I ask for SelectSelector by name.
"""

import collections
import selectors
import socket

PORT = 9000
HELLO = b"hello"
HIGH_WATER = 512 * 1024  # answer bytes queued for a client before I stop reading it
FD_SETSIZE = 1024  # select() cannot watch a descriptor at or above this

selector = selectors.SelectSelector()


class Connection:
    """One client: what it still has to get back, and whether it has finished sending."""

    def __init__(self, sock):
        self.sock = sock
        self.queue = collections.deque([memoryview(HELLO)])
        self.queued = len(HELLO)
        self.finished = False  # the client sent EOF
        selector.register(sock, selectors.EVENT_WRITE, self)

    def handle(self, mask):
        if mask & selectors.EVENT_READ:
            self.read()
        if self.sock is not None and mask & selectors.EVENT_WRITE:
            self.write()
        if self.sock is not None:
            self.update()

    def read(self):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if not data:
            self.finished = True
            return
        self.queue.append(memoryview(data.upper()))
        self.queued += len(data)

    def write(self):
        while self.queue:
            head = self.queue[0]
            try:
                sent = self.sock.send(head)
            except BlockingIOError:
                return
            except OSError:
                self.close()
                return
            self.queued -= sent
            if sent < len(head):
                self.queue[0] = head[sent:]
                return
            self.queue.popleft()

    def update(self):
        """Watch for what this connection needs now; close it when it needs nothing."""
        events = 0
        if not self.finished and self.queued < HIGH_WATER:
            events |= selectors.EVENT_READ
        if self.queued:
            events |= selectors.EVENT_WRITE
        if not events:  # finished and everything sent
            self.close()
        elif selector.get_key(self.sock).events != events:
            selector.modify(self.sock, events, self)

    def close(self):
        selector.unregister(self.sock)
        self.sock.close()
        self.sock = None


def accept(listener):
    for _ in range(100):  # a few at a time, then the others get their turn
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        except OSError:
            continue
        if sock.fileno() >= FD_SETSIZE:
            sock.close()
            continue
        sock.setblocking(False)
        Connection(sock)


def main():
    listener = socket.create_server(("", PORT), backlog=4096)
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ, None)
    while True:
        for key, mask in selector.select():
            if key.data is None:
                accept(listener)
            else:
                key.data.handle(mask)


if __name__ == "__main__":
    main()
