# variant: twisted
# kind: hostile
# mistake: never listens: it starts and sleeps forever, so the grader must give up on every
#   check after its start window instead of waiting
# expect-fail: conformance.greeting conformance.echo conformance.bytes conformance.sizes
#   conformance.glued conformance.split conformance.half-close conformance.tutorial-client
#   concurrency.many-clients concurrency.silent-client concurrency.slow-client
#   concurrency.one-thread robustness.reset robustness.vanish robustness.slow-reader
#   robustness.fuzz resources.fd-leak resources.memory resources.threads
"""A server that never opens its port."""

import time

print("starting up (not really)", flush=True)
while True:
    time.sleep(3600)
