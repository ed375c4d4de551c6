"""``make watch``: the kernel's side of every host of a lab, live (lab side, stdlib only).

The same code runs on the machine (``make watch``) and from a container of
the lab image on a lab VM; see docs/watch.md.
"""
