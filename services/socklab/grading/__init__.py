"""Grading a learner's own server: the checks, run from a client host.

``spec`` lists what is checked per variant (ids, points, hints); ``echo`` and
``udp`` hold the checks themselves, which talk to the server over the lab
network exactly as a client would; ``verdict`` turns what came back into
the words a learner reads; ``run`` runs one check by id, which is what
``socklab probe grade --variant V --check ID`` does on a client host and
what the host's grader (``socklab.host.grade``) runs check by check.

Lab side: standard library and socklab only.
"""
