"""Server loops: each only accepts and dispatches; sessions hold the behaviour."""
