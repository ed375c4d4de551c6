"""The two ways a protocol exchange can go wrong: their fault or ours."""


class ProtocolError(Exception):
    """Base class of every protocol violation."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow (their fault)."""


class LocalProtocolError(ProtocolError):
    """Our fault: we were asked to send something the protocol does not allow, or
    could not carry out a request the protocol allows (a full disk)."""
