# variant: epoll
# kind: correct
# mistake: written with selectors.EpollSelector and a per-client bytearray with a send offset,
#   the interest set changed with modify() only when it changes, instead of select.epoll
# expect-fail:
"""epoll-server for socklab: greets with hello, answers in upper case, one thread."""

import selectors
import socket

PORT = 9000
GREETING = b"hello"
READ_SIZE = 64 * 1024
PENDING_MAX = 2 * 1024 * 1024  # stop reading a client that owes more than this


class Client:
    def __init__(self, sock):
        self.sock = sock
        self.out = bytearray(GREETING)
        self.sent = 0  # bytes of self.out already sent
        self.eof = False
        self.events = 0

    def pending(self):
        return len(self.out) - self.sent

    def wanted(self):
        events = 0
        if not self.eof and self.pending() < PENDING_MAX:
            events |= selectors.EVENT_READ
        if self.pending():
            events |= selectors.EVENT_WRITE
        return events


sel = selectors.EpollSelector()


def close(client):
    sel.unregister(client.sock)
    client.sock.close()


def watch(client):
    wanted = client.wanted()
    if not wanted:
        close(client)
    elif wanted != client.events:
        if client.events:
            sel.modify(client.sock, wanted, client)
        else:
            sel.register(client.sock, wanted, client)
        client.events = wanted


def on_readable(client):
    try:
        data = client.sock.recv(READ_SIZE)
    except BlockingIOError:
        return True
    except OSError:
        return False
    if data:
        client.out += data.upper()
    else:
        client.eof = True
    return True


def on_writable(client):
    try:
        client.sent += client.sock.send(memoryview(client.out)[client.sent:])
    except BlockingIOError:
        return True
    except OSError:
        return False
    if client.sent > 256 * 1024 or client.sent == len(client.out):
        del client.out[:client.sent]  # drop what went out, now and then
        client.sent = 0
    return True


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("", PORT))
    listener.listen(4096)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ)
    while True:
        for key, mask in sel.select():
            if key.fileobj is listener:
                try:
                    sock, _ = listener.accept()
                except OSError:
                    continue
                sock.setblocking(False)
                watch(Client(sock))
                continue
            client = key.data
            ok = True
            if mask & selectors.EVENT_READ:
                ok = on_readable(client)
            if ok and mask & selectors.EVENT_WRITE:
                ok = on_writable(client)
            if ok:
                watch(client)
            else:
                close(client)


if __name__ == "__main__":
    main()
