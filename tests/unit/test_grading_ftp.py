"""The ftp checks' pure parts: the table, what they ask of a server, how they read answers.

No network: a ``Session`` reads from a scripted stand-in for its socket, so the
reading of answer lines (split, glued, cut, not JSON) and the verdicts of the
request helpers are tested on their own. That the checks pass the lab's own
server and fail the corpus's buggy ones is for ``make grade`` (and
``tests/grading``).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest

from socklab.grading import ftp, spec
from socklab.grading.echo import Target, Wrong
from socklab.grading.run import BODIES
from socklab.grading.spec_ftp import FTP_CHECKS
from socklab.host.grade import grader
from socklab.protocol import ftp as protocol
from socklab.protocol.errors import RemoteProtocolError
from socklab.registry import VARIANTS


class ScriptedSocket:
    """Hands out the scripted chunks one recv at a time, then EOF; records what is sent."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.sent = b""

    def recv(self, size: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def settimeout(self, value: float | None) -> None:
        pass

    def close(self) -> None:
        pass


def session(*chunks: bytes) -> ftp.Session:
    """A Session past its banner, reading the scripted chunks."""
    made = ftp.Session.__new__(ftp.Session)
    made.target, made.timeout, made.buffer, made.what = Target.of("ftp"), 1.0, b"", ""
    made.sock = ScriptedSocket(*chunks)  # type: ignore[assignment]
    return made


def line(**fields: Any) -> bytes:
    return json.dumps(fields).encode() + b"\n"


# --- the table ---------------------------------------------------------------------------


def test_the_table_is_the_graded_ftp_spec() -> None:
    assert spec.checks("ftp") == FTP_CHECKS
    ids = [c.id for c in FTP_CHECKS]
    assert len(ids) == len(set(ids))
    assert sum(c.points for c in FTP_CHECKS) == 99
    assert sum(c.points for c in FTP_CHECKS if c.category != "performance") == 94
    assert ids[-1] == "performance.throughput"


def test_every_check_has_a_body_but_throughput_which_the_host_measures() -> None:
    ids = {c.id for c in FTP_CHECKS}
    assert set(ftp.CHECKS) == ids - {"performance.throughput"}
    assert BODIES["ftp"] is ftp.CHECKS


def test_categories_run_in_the_order_of_the_vocabulary() -> None:
    order = [spec.CATEGORIES.index(c.category) for c in FTP_CHECKS]
    assert order == sorted(order)


def test_the_host_samples_the_resources_checks_and_judges_them() -> None:
    sampled = {c.id for c in FTP_CHECKS if c.sample}
    assert sampled == {"resources.fd-leak", "resources.threads"}


def test_the_links_check_asks_the_host_for_the_links_it_expects() -> None:
    (links,) = [c for c in FTP_CHECKS if c.setup]
    assert links.id == "security.links"
    assert links.setup in grader.SETUPS
    assert tuple(name for name, _ in grader.LINKS) == ftp.LINKS
    assert dict(grader.LINKS)["escape-link"] == "/etc/passwd"


def test_the_limits_are_the_contracts() -> None:
    assert ftp.MAX_FILE == VARIANTS["ftp"].caps["file"] == protocol.DEFAULT_MAX_FILE_SIZE
    assert VARIANTS["ftp"].caps["answer"] == ftp.MAX_LINE


@pytest.mark.parametrize("name", ftp.BAD_NAMES + ftp.BAD_GETS)
def test_every_name_the_checks_call_bad_the_lab_refuses_with_400(name: str) -> None:
    with pytest.raises(RemoteProtocolError) as refused:
        protocol.check_filename(name)
    assert refused.value.status == 400  # type: ignore[attr-defined]


@pytest.mark.parametrize("raw", [raw for raw, _ in ftp.BAD_REQUESTS])
def test_every_bad_request_of_the_errors_check_is_refused_by_the_lab(raw: bytes) -> None:
    connection = protocol.FtpServerConnection()
    events = connection.receive(raw)
    bad = [e for e in events if isinstance(e, protocol.BadRequest)]
    requests = [e for e in events if isinstance(e, protocol.Request)]
    # Either the bytes are no request (400 at once), or a request with no known action.
    assert bad or [r.action for r in requests] in (["delete"], [""])


def test_bad_json_starts_at_once_with_what_cannot_be_an_object() -> None:
    # A server sees at once that these are no request; a split object is only incomplete.
    first = ftp.BAD_REQUESTS[0][0]
    assert not first.lstrip().startswith(b"{")


# --- reading answers ---------------------------------------------------------------------


def test_an_answer_split_over_chunks_is_one_answer() -> None:
    s = session(b'{"sta', b'tus": 2', b"00}\n")
    assert s.answer("a list") == {"status": 200}


def test_glued_answers_and_the_bytes_after_them_are_kept_for_later() -> None:
    s = session(line(status=200, filename="f", filesize=3) + b"abc" + line(status=404))
    assert s.answer("a get")["filesize"] == 3
    assert s.read(3, "the file") == b"abc"
    assert s.answer("a get")["status"] == 404


def test_a_line_that_is_not_a_json_object_with_a_status_is_wrong() -> None:
    for raw in (b"OK\n", b"[200]\n", b'{"code": 200}\n'):
        with pytest.raises(Wrong, match="expected"):
            session(raw).answer("a list")


def test_a_server_that_closes_before_the_newline_is_named() -> None:
    with pytest.raises(Wrong, match=re.escape("closed the connection; had b'{\"status\"'")):
        session(b'{"status"').answer("a list")


def test_a_line_past_the_cap_is_refused_without_waiting_for_more() -> None:
    s = session(*[b"x" * (1 << 20)] * 5)
    with pytest.raises(Wrong, match="without one"):
        s.line("the banner")


def test_what_arrives_unasked_after_a_line_is_seen() -> None:
    s = session(b"welcome\nand more\n")
    assert s.line("the banner") == b"welcome\n"
    assert s.quiet(0.1) == b"and more\n"


# --- the requests a correct client makes --------------------------------------------------


def test_put_sends_the_request_then_the_data_and_checks_the_201() -> None:
    data = b"hello"
    digest = hashlib.sha256(data).hexdigest()
    s = session(line(status=200), line(status=201, filename="f", filesize=5, sha256=digest))
    ftp.put(s, "f", data, after=b'{"action": "list"}')
    request, rest = s.sock.sent.split(b"}", 1)
    assert json.loads(request + b"}") == {"action": "put", "filename": "f", "filesize": 5}
    assert rest == b'hello{"action": "list"}'


def test_put_refuses_a_201_without_the_datas_sha256() -> None:
    upper = hashlib.sha256(b"x").hexdigest().upper()
    for done in (line(status=201, filesize=1), line(status=201, filesize=1, sha256=upper)):
        with pytest.raises(Wrong, match="sha256"):
            ftp.put(session(line(status=200), done), "f", b"x")


def test_put_sends_no_data_when_the_first_answer_is_not_200() -> None:
    s = session(line(status=413))
    with pytest.raises(Wrong, match="expected status 200; came"):
        ftp.put(s, "f", b"data")
    assert not s.sock.sent.endswith(b"data")


def test_get_compares_the_bytes_and_says_where_they_differ() -> None:
    s = session(line(status=200, filesize=4) + b"abXd")
    with pytest.raises(Wrong, match="first difference at byte 2"):
        ftp.get(s, "f", b"abcd")


def test_a_get_of_a_zero_byte_file_reads_nothing_more() -> None:
    s = session(line(status=200, filesize=0) + line(status=200, files=[]))
    assert ftp.get(s, "empty", b"") == b""
    assert ftp.listing(s) == []


def test_a_listing_is_objects_with_a_name_and_a_size() -> None:
    files = [{"name": "a", "size": 1, "mtime": 5}]
    assert ftp.listing(session(line(status=200, files=files))) == files
    for bad in ({"files": ["a"]}, {"files": [{"name": "a"}]}, {}):
        with pytest.raises(Wrong, match="a list of objects with a name and a size"):
            ftp.listing(session(line(status=200, **bad)))


def test_a_refusal_with_the_expected_status_passes() -> None:
    ftp.refused(session(line(status=400, message="no")),
                {"action": "get", "filename": ".."}, 400, "not a plain file name")


def test_a_put_taken_instead_of_refused_says_so_and_what_followed() -> None:
    s = session(line(status=200), line(status=201, filename="../escape"))
    with pytest.raises(Wrong, match="the server would take the file; sent it 16 bytes"):
        ftp.refused(s, {"action": "put", "filename": "../escape", "filesize": 16}, 400,
                    "not a plain file name")


def test_a_get_that_leaks_a_file_shows_its_first_bytes() -> None:
    s = session(line(status=200, filesize=30) + b"root:x:0:0:root:/root:/bin/sh\n")
    with pytest.raises(Wrong, match=r"then 30 B of data starting b'root:x:0:0"):
        ftp.refused(s, {"action": "get", "filename": "escape-link"}, 404, "a link")


def test_shown_cuts_long_requests() -> None:
    assert ftp.shown({"a": 1}) == '{"a": 1}'
    assert ftp.shown("x" * 300).endswith("…") and len(ftp.shown("x" * 300)) == 201
