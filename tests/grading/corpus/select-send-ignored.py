# variant: select
# kind: buggy
# mistake: ignores what send() returns on its non-blocking sockets: whatever the kernel did
#   not take is thrown away, so long answers lose bytes
# expect-fail: conformance.sizes conformance.half-close robustness.slow-reader
"""My select-server for socklab: says hello, then answers everything in upper case.

One thread and one select() loop over the listening socket and every client.

(Calibrated against the live grader: conformance.half-close's 100 kB answer is mostly
taken by the kernel's buffers in whole sends, but on a loaded machine a send is partial
and 20 kB go missing: the mistake shows there by chance, and always from 1 MiB on.)
"""

import select
import socket

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
    server.bind(("", PORT))
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
                sock.send(waiting)  # send the answer...
            except BlockingIOError:
                continue
            except OSError:
                close_client(sock)
                continue
            waiting.clear()  # ...and it is gone
            if not waiting and sock in done:
                close_client(sock)


if __name__ == "__main__":
    main()
