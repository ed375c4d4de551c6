"""The host's grader: ``make grade`` grades a learner's own server.

It starts the learner's server in a container of the lab, runs the checks
of ``socklab.grading.spec`` one by one from a client host (``socklab probe
grade``), scores them with the spec's points, and writes what it found as one
``grade`` dict rendered for each reader by ``report`` (grade.json, report.md,
report.html, junit.xml, Gradescope's and PrairieLearn's results.json; their
fields are in docs/grading.md). Host side: it never runs inside a lab host.
"""
