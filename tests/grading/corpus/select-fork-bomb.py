# variant: select
# kind: hostile
# mistake: a fork bomb: listens on 9000, then every process forks in a loop for as long as
#   the kernel lets it (and keeps trying when it does not); nobody ever accepts a client
# expect-fail: conformance.greeting conformance.echo conformance.bytes conformance.sizes
#   conformance.glued conformance.split conformance.half-close conformance.tutorial-client
#   concurrency.many-clients concurrency.silent-client concurrency.slow-client
#   concurrency.one-thread concurrency.fd-wall robustness.reset robustness.vanish
#   robustness.slow-reader robustness.fuzz resources.fd-leak resources.memory resources.threads
"""A fork bomb that looks like a server: the port is open, the kernel completes every
handshake, and then nothing. The grader must still end with a verdict and leave nothing
behind; the lab's process limit is what stops the bomb.
"""

import os
import socket
import time

server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("", 9000))
server.listen(4096)
print("listening on 9000; now forking", flush=True)

refused = 0
while True:
    try:
        os.fork()  # parent and child both go round again
    except OSError:  # EAGAIN: the process limit is reached; try again soon
        refused += 1
        if refused == 1:
            print(f"pid {os.getpid()}: fork refused", flush=True)
        time.sleep(0.1)
