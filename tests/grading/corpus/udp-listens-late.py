# variant: udp
# kind: hostile
# mistake: sleeps 20 s before it binds its port, twice the grader's start window, then serves
#   correctly: the grader must call it not ready instead of waiting longer, on every restart
# expect-fail: conformance.ack conformance.sizes conformance.boundaries
#   conformance.tutorial-client concurrency.many-clients robustness.fuzz resources.fd-leak
#   resources.threads
"""udp-server for socklab that takes its time: 20 s of "warming up", then b"ok" to every
datagram.
"""

import socket
import time

print("warming up for 20 s", flush=True)
time.sleep(20)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("", 9999))
print("bound to 9999", flush=True)
while True:
    _, address = sock.recvfrom(65535)
    sock.sendto(b"ok", address)
