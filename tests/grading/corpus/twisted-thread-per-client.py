# variant: twisted
# kind: buggy
# mistake: serves each client in a thread of its own (blocking recv/sendall): correct answers,
#   but the twisted variant's exercise is one thread serving every client
# expect-fail: concurrency.one-thread
"""Echo server on port 8000 (the twisted-server's contract): every byte back unchanged.

I did not want to learn Twisted, so: one thread per client.
"""

import socket
import threading


def handle(conn, addr):
    with conn:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except OSError as error:
            print(addr, "error:", error, flush=True)


def main():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("", 8000))
    server.listen(4096)
    while True:
        conn, addr = server.accept()
        threading.Thread(target=handle, args=(conn, addr), daemon=True).start()


if __name__ == "__main__":
    main()
