"""Integration tests: client containers talk to server containers over a Docker network."""
