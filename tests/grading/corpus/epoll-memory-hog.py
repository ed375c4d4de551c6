# variant: epoll
# kind: hostile
# mistake: a memory hog: listens on 9000, then allocates (and touches) 8 MiB after 8 MiB
#   until the kernel kills it; every start of it dies the same way
# expect-fail: conformance.greeting conformance.echo conformance.bytes conformance.sizes
#   conformance.glued conformance.split conformance.half-close conformance.tutorial-client
#   concurrency.many-clients concurrency.silent-client concurrency.slow-client
#   concurrency.one-thread concurrency.idle-thousands robustness.reset robustness.vanish
#   robustness.slow-reader robustness.fuzz resources.fd-leak resources.memory resources.threads
"""Eats memory until killed. In the lab the container's memory limit and the OOM killer
end it; under a plain RLIMIT_AS it ends with MemoryError instead.
"""

import socket

server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("", 9000))
server.listen(4096)
print("listening on 9000; now eating memory", flush=True)

hoard = []
while True:
    # bytes * n writes every byte, so each block is really resident, not just reserved.
    hoard.append(b"\xa5" * (8 << 20))
    if len(hoard) % 8 == 0:
        print(f"holding {len(hoard) * 8} MiB", flush=True)
