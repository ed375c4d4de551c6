# variant: select
# kind: buggy
# mistake: no handling of ConnectionResetError or BrokenPipeError: the first client that
#   resets its connection (or vanishes before its answer) crashes the whole server
# expect-fail: robustness.reset robustness.vanish robustness.fuzz
"""My select-server for socklab: says hello, then answers everything in upper case.

One thread and one select() loop over the listening socket and every client.

(Calibrated against the live grader: only the checks that reset or abandon connections
on purpose end this server; the others leave with a FIN after reading what they are owed.)
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
                client, _ = server.accept()
                if client.fileno() >= FD_SETSIZE:
                    client.close()  # select() could not watch it
                    continue
                client.setblocking(False)
                outgoing[client] = bytearray(GREETING)
                continue
            data = sock.recv(CHUNK)  # select said readable, so this never blocks
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
            sent = sock.send(waiting)  # select said writable
            del waiting[:sent]
            if not waiting and sock in done:
                close_client(sock)


if __name__ == "__main__":
    main()
