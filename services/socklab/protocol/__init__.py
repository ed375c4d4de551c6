"""I/O-free protocol code: framing, the exec handshake and the ftp messages.

Nothing in this package touches a socket, a file or a clock. Each module is a
small state machine over bytes: feed bytes in, get messages out, ``None`` for
"need more".
"""
