"""The benchmark's lab side: the load generator and the reference servers.

They run inside lab hosts (``python3 -m socklab.loadgen.load`` on a client,
``python3 -m socklab.loadgen.refservers`` on a server host); the orchestration
that starts them and reads their JSON is ``socklab.host.bench``.
"""
