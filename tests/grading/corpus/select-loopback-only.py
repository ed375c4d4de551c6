# variant: select
# kind: buggy
# mistake: listens on 127.0.0.1 only: it works from its own host, but the client hosts
#   cannot reach it, so the grader never sees it ready
# expect-fail: conformance.greeting conformance.echo conformance.bytes conformance.sizes
#   conformance.glued conformance.split conformance.half-close conformance.tutorial-client
#   concurrency.many-clients concurrency.silent-client concurrency.slow-client
#   concurrency.one-thread concurrency.fd-wall robustness.reset robustness.vanish
#   robustness.slow-reader robustness.fuzz resources.fd-leak resources.memory resources.threads
"""My select-server for socklab: says hello, then answers everything in upper case.

One thread and one select() loop over the listening socket and every client.
"""

import select
import socket

HOST = "127.0.0.1"  # localhost, where I test it
PORT = 9000
GREETING = b"hello"
CHUNK = 65536
# When this much of a client's answer is still waiting to be sent, I stop
# reading from that client until it reads some (else a client that never
# reads makes me keep everything it sends).
MAX_WAITING = 1024 * 1024
# select() only works with descriptors below FD_SETSIZE.
FD_SETSIZE = 1024


def main():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, PORT))
    server.listen(1024)
    server.setblocking(False)
    print("listening on port", PORT, flush=True)

    outgoing = {}  # client socket -> bytearray of answer not sent yet
    done = set()  # clients that sent EOF: close them once their answer is out

    def close_client(sock):
        outgoing.pop(sock, None)
        done.discard(sock)
        sock.close()

    while True:
        reading = [server]
        for sock, waiting in outgoing.items():
            if sock not in done and len(waiting) < MAX_WAITING:
                reading.append(sock)
        writing = [sock for sock, waiting in outgoing.items() if waiting]
        readable, writable, _ = select.select(reading, writing, [])

        for sock in readable:
            if sock is server:
                try:
                    client, _ = server.accept()
                except OSError:
                    continue  # it left already
                if client.fileno() >= FD_SETSIZE:
                    client.close()  # select() could not watch it
                    continue
                client.setblocking(False)
                outgoing[client] = bytearray(GREETING)
                continue
            try:
                data = sock.recv(CHUNK)
            except BlockingIOError:
                continue
            except OSError:  # reset by the client, and the like
                close_client(sock)
                continue
            if data:
                outgoing[sock] += data.upper()
            else:  # EOF: the client sends nothing more, but may still read
                done.add(sock)
                if not outgoing[sock]:
                    close_client(sock)

        for sock in writable:
            if sock not in outgoing:
                continue  # closed while reading above
            waiting = outgoing[sock]
            try:
                sent = sock.send(waiting)
            except BlockingIOError:
                continue
            except OSError:
                close_client(sock)
                continue
            del waiting[:sent]
            if not waiting and sock in done:
                close_client(sock)


if __name__ == "__main__":
    main()
