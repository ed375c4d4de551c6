"""``socklab probe grade``: one check of `make grade`, run by hand (see socklab.grading.run)."""

from socklab.grading.run import HELP, NAME, add_arguments, run

__all__ = ["HELP", "NAME", "add_arguments", "run"]
