"""socklab: the servers, clients and probes of a containerized network-programming lab."""

__version__ = "0.1.0"
