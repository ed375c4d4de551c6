"""The exec token's challenge–response: proofs, both framings, the server's state machine."""

from __future__ import annotations

import itertools

import pytest

from socklab.protocol import auth
from socklab.protocol.auth import (
    FRAMINGS,
    MAX_AUTH_MESSAGE,
    TRANSITIONS,
    Accepted,
    AuthDenied,
    ClientAuth,
    Denied,
    Event,
    ServerAuth,
    State,
    TokenError,
)
from socklab.protocol.errors import LocalProtocolError, RemoteProtocolError
from socklab.protocol.framing import HEADER, encode_frame

TOKEN = b"lab-token-0123456789"
NONCE = "00112233445566778899aabbccddeeff" * 2

# Known answers, computed with an independent tool:
#   printf '%s' 'socklab-exec/framed|<NONCE>' | openssl dgst -sha256 -hmac lab-token-0123456789
PROOFS = {
    "framed": "b2f1ad090d702396da608bf0ab3a0eb93be42db6dd403568b13506dc9c66997c",
    "handshake": "186b8645eda2c028b47a5d62d0fdeed6583ef2f0edf312e52507ee39c850a169",
}

# What each framing puts on the wire, for the same nonce and proof.
WIRE = {
    "handshake": {
        "challenge": f"Challenge|{NONCE}\n".encode(),
        "proof": f"Proof|{PROOFS['handshake']}\n".encode(),
        "accepted": b"Auth|ok\n",
        "denied": b"Auth|denied|no good\n",
    },
    "framed": {
        "challenge": encode_frame(b'{"challenge": "%s"}' % NONCE.encode()),
        "proof": encode_frame(b'{"proof": "%s"}' % PROOFS["framed"].encode()),
        "accepted": encode_frame(b'{"auth": "ok"}'),
        "denied": encode_frame(b'{"auth": "denied", "error": "no good"}'),
    },
}

framing_names = pytest.mark.parametrize("name", list(FRAMINGS))


def messages(name: str, chunks: list[bytes]) -> tuple[list[bytes], bytes]:
    """Everything ``name``'s reader cuts out of ``chunks``, and what it keeps after."""
    reader, found = FRAMINGS[name].reader(), []
    for chunk in chunks:
        reader.feed(chunk)
        while (message := reader.next_message()) is not None:
            found.append(message)
    return found, reader.rest()


# --- the token ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "  \n"])
def test_auth_load_token_unset_is_off(value: str | None) -> None:
    assert auth.load_token(value) is None


@pytest.mark.parametrize(("value", "token"), [
    ("x" * 16, b"x" * 16), ("  0123456789abcdef\n", b"0123456789abcdef"),
    ("é" * 8, "é".encode() * 8),  # bytes count, not characters
])
def test_auth_load_token_strips_and_encodes(value: str, token: bytes) -> None:
    assert auth.load_token(value) == token


@pytest.mark.parametrize("value", ["short", "x" * 15, " " + "x" * 15 + " ", "é" * 7])
def test_auth_load_token_refuses_short_with_its_length(value: str) -> None:
    with pytest.raises(TokenError, match=r"bytes long; use at least 16"):
        auth.load_token(value)


def test_auth_load_token_names_its_source() -> None:
    with pytest.raises(TokenError, match="/run/token"):
        auth.load_token("short", "/run/token")


# --- proofs ---------------------------------------------------------------------------


@framing_names
def test_auth_proof_known_answer(name: str) -> None:
    assert auth.compute_proof(TOKEN, FRAMINGS[name].context, NONCE) == PROOFS[name]


@framing_names
def test_auth_proof_matches_only_its_token_port_and_nonce(name: str) -> None:
    context = FRAMINGS[name].context
    other_context = next(f.context for n, f in FRAMINGS.items() if n != name)
    proof = PROOFS[name]
    assert auth.proof_matches(TOKEN, context, NONCE, proof)
    assert auth.proof_matches(TOKEN, context, NONCE, proof.upper())
    assert not auth.proof_matches(TOKEN + b"x", context, NONCE, proof)
    assert not auth.proof_matches(TOKEN, other_context, NONCE, proof)  # no cross-port replay
    assert not auth.proof_matches(TOKEN, context, "ff" + NONCE[2:], proof)  # no replay
    assert not auth.proof_matches(TOKEN, context, NONCE, "0" * 64)


def test_auth_nonces_are_fresh() -> None:
    nonces = {ServerAuth(TOKEN, FRAMINGS["framed"]).nonce_hex for _ in range(50)}
    assert len(nonces) == 50
    assert all(auth.HEX_DIGEST.fullmatch(n) for n in nonces)


# --- the framings ---------------------------------------------------------------------


@framing_names
def test_auth_framing_encodes(name: str) -> None:
    framing, wire = FRAMINGS[name], WIRE[name]
    assert framing.challenge(NONCE) == wire["challenge"]
    assert framing.proof(PROOFS[name]) == wire["proof"]
    assert framing.accepted() == wire["accepted"]
    assert framing.denied("no good") == wire["denied"]


@framing_names
@pytest.mark.parametrize("kind", ["challenge", "proof", "accepted", "denied"])
def test_auth_framing_reader_three_ways(name: str, kind: str, way) -> None:
    trailer = b"ls -l" if name == "handshake" else HEADER.pack(9)[:3]
    found, rest = messages(name, way.chunks(WIRE[name][kind], trailer))
    assert len(found) == 1
    assert rest == way.leftover(trailer)
    if kind == "challenge":
        assert FRAMINGS[name].parse_challenge(found[0]) == NONCE
    if kind == "proof":
        assert FRAMINGS[name].parse_proof(found[0]) == PROOFS[name]


def test_auth_line_reader_drops_carriage_return() -> None:
    assert messages("handshake", [b"Proof|ab\r\n"]) == ([b"Proof|ab"], b"")


@pytest.mark.parametrize(("name", "flood"), [
    ("handshake", b"P" * (MAX_AUTH_MESSAGE + 1)),
    ("framed", HEADER.pack(MAX_AUTH_MESSAGE + 1)),
])
def test_auth_reader_refuses_oversized_message(name: str, flood: bytes) -> None:
    reader = FRAMINGS[name].reader()
    reader.feed(flood)
    with pytest.raises(RemoteProtocolError):
        reader.next_message()


@pytest.mark.parametrize(("name", "message"), [
    ("handshake", b"Proof|" + b"a" * 63),
    ("handshake", b"Proof|" + b"g" * 64),
    ("handshake", b"proof|" + b"a" * 64),
    ("handshake", b"Proof|" + b"a" * 64 + b"|x"),
    ("handshake", b"ls -l"),
    ("handshake", b"\xff\xfe"),
    ("framed", b'{"cmd": "ls"}'),
    ("framed", b'{"proof": 7}'),
    ("framed", b'["proof"]'),
    ("framed", b"\xff"),
    ("framed", b'{"proof": "%s"}' % (b"a" * 65)),
    ("framed", b"[" * (MAX_AUTH_MESSAGE - 4)),  # json.loads: RecursionError
])
def test_auth_framing_refuses_malformed_proof(name: str, message: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        FRAMINGS[name].parse_proof(message)


@framing_names
def test_auth_framing_verdicts(name: str) -> None:
    framing = FRAMINGS[name]
    ok, = messages(name, [framing.accepted()])[0]
    assert framing.parse_verdict(ok) is None
    denied, = messages(name, [framing.denied("bad  proof\nreally")])[0]
    with pytest.raises(AuthDenied, match="refused the token: bad proof really"):
        framing.parse_verdict(denied)


@pytest.mark.parametrize(("name", "message"), [
    ("handshake", b"Ready|5|0"), ("framed", b'{"auth": "maybe"}'), ("framed", b"[]")])
def test_auth_framing_unexpected_verdict_is_refusal(name: str, message: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        FRAMINGS[name].parse_verdict(message)


@framing_names
def test_auth_framing_recognises_a_challenge(name: str) -> None:
    framing = FRAMINGS[name]
    (challenge,), _ = messages(name, [WIRE[name]["challenge"]])
    assert framing.is_challenge(challenge)
    assert not framing.is_challenge(b'{"exit_status": 0}' if name == "framed" else b"Ready|1|0")


@framing_names
def test_auth_denied_reason_is_one_short_line(name: str) -> None:
    (message,), _ = messages(name, [FRAMINGS[name].denied("x\n" * 500)])
    assert len(message) < MAX_AUTH_MESSAGE and b"\n" not in message


# --- the server's state machine -------------------------------------------------------


@framing_names
def test_auth_server_accepts_right_proof_keeps_what_follows(name: str, way) -> None:
    server = ServerAuth(TOKEN, FRAMINGS[name], NONCE)
    assert server.challenge() == WIRE[name]["challenge"]
    trailer = b"pwd"
    verdicts = [v for chunk in way.chunks(WIRE[name]["proof"], trailer)
                if (v := server.receive(chunk)) is not None]
    assert verdicts == [Accepted(WIRE[name]["accepted"], way.leftover(trailer))]
    assert server.state is State.ACCEPTED


@framing_names
def test_auth_server_denies_wrong_token(name: str) -> None:
    server = ServerAuth(b"another-token-0123456789", FRAMINGS[name], NONCE)
    verdict = server.receive(WIRE[name]["proof"])
    assert isinstance(verdict, Denied) and "does not match" in verdict.reason
    assert verdict.answer == FRAMINGS[name].denied(verdict.reason)
    assert server.state is State.DENIED


def test_auth_server_denies_proof_made_for_the_other_port() -> None:
    server = ServerAuth(TOKEN, FRAMINGS["framed"], NONCE)
    replayed = FRAMINGS["framed"].proof(PROOFS["handshake"])
    assert isinstance(server.receive(replayed), Denied)


@pytest.mark.parametrize(("name", "data"), [
    ("handshake", b"ls -l\n"), ("handshake", b"x" * (MAX_AUTH_MESSAGE + 1)),
    ("framed", encode_frame(b'{"cmd": "ls"}')), ("framed", HEADER.pack(1 << 20)),
])
def test_auth_server_denies_anything_but_a_proof(name: str, data: bytes) -> None:
    verdict = ServerAuth(TOKEN, FRAMINGS[name], NONCE).receive(data)
    assert isinstance(verdict, Denied)


@pytest.mark.parametrize("data", [b"ls", b"touch marker", b"P", b"Proof", b"Proof|"])
def test_auth_server_handshake_refuses_a_command_without_waiting_for_newline(
        data: bytes) -> None:
    server = ServerAuth(TOKEN, FRAMINGS["handshake"], NONCE)
    verdict = server.receive(data)
    if b"Proof|".startswith(data):
        assert verdict is None  # could still become a proof
    else:
        assert isinstance(verdict, Denied) and "expected Proof|<64 hex digits>" in verdict.reason


@framing_names
def test_auth_server_takes_no_input_after_its_verdict(name: str) -> None:
    server = ServerAuth(TOKEN, FRAMINGS[name], NONCE)
    server.receive(WIRE[name]["proof"])
    with pytest.raises(LocalProtocolError):
        server.receive(b"more")


def test_auth_transitions_cover_every_event() -> None:
    assert {event for _, event in TRANSITIONS} == set(Event)
    assert {state for state, _ in TRANSITIONS} == {State.AWAIT_PROOF}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(State, Event)))
def test_auth_table_ends_in_a_final_state(state: State, event: Event) -> None:
    final = {State.ACCEPTED, State.DENIED}
    assert ((state, event) in TRANSITIONS) is (state not in final)
    assert (state, event) not in TRANSITIONS or TRANSITIONS[(state, event)] in final


# --- client and server together -------------------------------------------------------


@framing_names
@pytest.mark.parametrize(("client_token", "accepted"), [(TOKEN, True), (b"x" * 16, False)])
def test_auth_client_and_server_round_trip(name: str, client_token: bytes,
                                           accepted: bool) -> None:
    framing = FRAMINGS[name]
    server, client = ServerAuth(TOKEN, framing), ClientAuth(client_token, framing)
    (challenge,), _ = messages(name, [server.challenge()])
    proof = client.answer(challenge)
    assert TOKEN not in proof and TOKEN.hex().encode() not in proof
    verdict = server.receive(proof)
    assert isinstance(verdict, Accepted) is accepted
    (answer,), _ = messages(name, [verdict.answer])
    if accepted:
        client.verdict(answer)
    else:
        with pytest.raises(AuthDenied):
            client.verdict(answer)
