"""Clients: protocol clients (``core``), the learner's REPLs and scripted checks."""
