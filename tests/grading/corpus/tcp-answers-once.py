# variant: tcp
# kind: buggy
# mistake: answers only the first recv() of a connection and reads the rest without
#   answering it: a message that arrives in more than one piece, or many messages glued
#   together, are answered once, in part; a second line typed at the lab's client is never
#   answered
# expect-fail: conformance.sizes conformance.glued conformance.split conformance.half-close
#   conformance.tutorial-client robustness.slow-reader
"""tcp-server for socklab: one client at a time, every message back in upper case."""

import socket

HOST = ""
PORT = 9000


def main():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, PORT))
    server.listen(5)
    print("waiting for clients on port", PORT, flush=True)
    while True:
        conn, address = server.accept()
        print("connected:", address, flush=True)
        try:
            message = conn.recv(1024)  # the client's message
            conn.sendall(message.upper())
            while conn.recv(1024):  # wait until the client hangs up
                pass
        except OSError as error:
            print("error:", error, flush=True)
        conn.close()


if __name__ == "__main__":
    main()
