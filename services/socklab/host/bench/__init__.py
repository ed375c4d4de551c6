"""``make bench``: every server variant side by side, against references, across the network.

The layout (after MagicStack's vmbench, adapted to hosts on a Docker network):

- ``grid``, ``targets``: what is measured (the cells) and how each server is
  reached (port, greeting, echo transform). No I/O; shared by host and containers.
- ``stats``: latency histograms, percentiles and the median/min-max spread. No I/O.
- ``load``: the load generator, run *in client containers* (stdlib and socklab only).
- ``refservers``: the reference servers (asyncio Protocol, asyncio + uvloop,
  threaded ``socketserver``), run in a server container like the variants.
- ``lab``: the bench's own Docker network and containers, from compose/lab.yml (host).
- ``workloads``, ``orchestrate``: run every cell N times, with a progress bar (host).
- ``report``, ``plots``: results.json, report.md (ratios to the references), PNGs (host).

Run it with ``python -m socklab.host.bench run [--quick]`` (``make bench``).
"""
