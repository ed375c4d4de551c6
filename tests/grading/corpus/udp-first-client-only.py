# variant: udp
# kind: buggy
# mistake: remembers the address of the first datagram and sends every answer there: only
#   the first client ever hears back
# expect-fail: conformance.sizes conformance.boundaries conformance.tutorial-client
#   concurrency.many-clients robustness.fuzz resources.fd-leak resources.threads
"""udp-server for socklab: answers each datagram with b"ok"."""

import socket

# Notes after running the grader's checks by hand (local calibration): conformance.ack is
# the first client, so it passes; everyone after it gets nothing.


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("", 9999))
    client = None
    while True:
        _, address = sock.recvfrom(65535)  # the data does not matter
        if client is None:
            client = address  # the client I talk to
            print("client is", client, flush=True)
        sock.sendto(b"ok", client)


if __name__ == "__main__":
    main()
