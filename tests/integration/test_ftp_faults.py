"""The ftp server under faults: races, limits, a full disk, a kill, slow and silent clients.

Every test that breaks something first stores some uploads, then, after the
fault, asserts each of them is still there with the same sha256 and that no
``.socklab-partial-*`` file is left: no fault may cost a completed upload.
The scripted clients are in ``socklab.clients.scripted_ftp``; they find the
ftp port in socklab.registry (``variant="ftp"``), on the host each test names.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from integration.harness import Host, TestLab, wait_until
from socklab.protocol.ftp import PARTIAL_PREFIX
from socklab.registry import CLIENTS, VARIANTS

MB = 1 << 20
KB = 1 << 10
UPLOADS = "/srv/uploads"
MODULE = "socklab.clients.scripted_ftp"
FTP = VARIANTS["ftp"]

# The spare server for slow and silent clients drops a client after this many
# seconds without progress (the lab's default is 600).
IDLE_SECONDS = 3

# How long a test waits for a server-side effect before it fails.
EFFECT_TIMEOUT = 60


# --- what is stored, measured in the server container -------------------------------


def stored(server: Host) -> dict[str, str]:
    """sha256 of every regular file in /srv/uploads, partials included, by name."""
    result = server.run("find", UPLOADS, "-maxdepth", "1", "-type", "f",
                        "-exec", "sha256sum", "{}", "+")
    assert result.exit_code == 0, result.stderr
    digests = {}
    for line in result.stdout.splitlines():
        digest, path = line.split(maxsplit=1)
        digests[path.removeprefix(UPLOADS + "/")] = digest
    return digests


def completed(digests: dict[str, str]) -> dict[str, str]:
    return {n: d for n, d in digests.items() if not n.startswith(PARTIAL_PREFIX)}


def partial_sizes(server: Host) -> list[int]:
    result = server.run("find", UPLOADS, "-maxdepth", "1", "-name", PARTIAL_PREFIX + "*",
                        "-printf", "%s\\n")
    return [int(size) for size in result.stdout.split()]


def assert_no_upload_lost(before: dict[str, str], server: Host,
                          replaced: tuple[str, ...] = ()) -> dict[str, str]:
    """Every completed upload of ``before`` (but ``replaced``) is intact; no partial is left."""
    after = stored(server)
    lost = {n: d for n, d in completed(before).items()
            if n not in replaced and after.get(n) != d}
    assert not lost, f"completed uploads lost or changed: {lost} (now {after})"
    assert completed(after) == after, f"partial files left: {after}"
    return after


def store_earlier_uploads(client: Host, alias: str, sizes: dict[str, int]) -> dict[str, str]:
    """Upload ``sizes`` (name: bytes); the sha256 of each, as the client computed it."""
    digests = {}
    for seed, (name, size) in enumerate(sizes.items()):
        result = client.check("ftp_put", variant="ftp", host=alias, filename=name, size=size,
                              seed=1000 + seed)
        assert result["answer"]["status"] == 201, result
        digests[name] = result["sha256"]
    return digests


def open_gate(*hosts_and_gate: tuple[Host, str]) -> None:
    for host, gate in hosts_and_gate:
        assert host.run("touch", gate).exit_code == 0


def spare_ftp(lab: TestLab, alias: str, *options: str, **overrides: object) -> Host:
    command = [*lab.services[FTP.host]["command"], *options]
    return lab.start(FTP.host, alias=alias, command=command, **overrides)


@pytest.fixture(scope="module")
def client2(lab: TestLab) -> Host:
    return lab.host(CLIENTS[1])


# --- one name, two hosts --------------------------------------------------------------


RACE_ROUNDS = 3
RACE_SIZE = 4 * MB


def test_ftp_same_name_from_two_hosts_at_once_ends_one_whole(
        lab: TestLab, client1: Host, client2: Host,
        record_property: pytest.RecordProperty) -> None:
    server = spare_ftp(lab, "ftp-race")
    try:
        before = store_earlier_uploads(client1, "ftp-race", {"earlier.bin": MB})
        assert stored(server) == before
        winners = []
        for round_ in range(RACE_ROUNDS):
            gate = f"/tmp/ftp-race-gate-{round_}"
            with ThreadPoolExecutor(2) as pool:
                futures = [pool.submit(host.check, "ftp_put_gated", module=MODULE,
                                       variant="ftp", host="ftp-race", filename="same.bin",
                                       size=RACE_SIZE, gate=gate, seed=2 * round_ + index)
                           for index, host in enumerate((client1, client2))]
                # Both uploads are in flight at once: two partials, each half written.
                both_half = wait_until(lambda: sorted(partial_sizes(server)) ==
                                       [RACE_SIZE // 2] * 2, EFFECT_TIMEOUT)
                hosts = (client1, client2) if round_ % 2 else (client2, client1)
                open_gate(*((host, gate) for host in hosts))  # each host first in turn
                one, two = (future.result() for future in futures)
            assert both_half, "the two uploads were never in flight together"
            for result in (one, two):
                assert result["first"]["status"] == 200
                assert (result["final"]["status"], result["final"]["sha256"]) == (
                    201, result["sha256"])
            now = stored(server)
            assert now["same.bin"] in (one["sha256"], two["sha256"]), "a mix of two uploads"
            winners.append("client-1" if now["same.bin"] == one["sha256"] else "client-2")
            assert_no_upload_lost(before, server)
        record_property("figures", f"ftp same name from two hosts, whole after each round: "
                                   f"{winners}")
    finally:
        lab.remove(server)


# --- limits ---------------------------------------------------------------------------


LIMIT = 1_000_000


def test_ftp_size_limit_is_413_and_nothing_written(lab: TestLab, client1: Host) -> None:
    server = spare_ftp(lab, "ftp-limit", "--max-size", str(LIMIT))
    try:
        before = store_earlier_uploads(client1, "ftp-limit", {"at-limit.bin": LIMIT})
        assert completed(stored(server)) == before  # the limit itself is allowed
        result = client1.check("ftp_put_then", module=MODULE, variant="ftp", host="ftp-limit",
                               filename="over.bin", size=LIMIT + 1, then=[{"action": "list"}])
        assert result["first"]["status"] == 413 and result["final"] is None
        (listing,) = result["then"]  # the same connection still answers
        assert listing["status"] == 200
        assert "over.bin" not in {f["name"] for f in listing["files"]}
        after = assert_no_upload_lost(before, server)
        assert set(after) == {"at-limit.bin"}
    finally:
        lab.remove(server)


# The full-disk server: /srv/uploads is a 2 MiB tmpfs owned by socklab (uid 1000).
DISK = "size=2m,uid=1000,gid=1000,mode=0755"


def test_ftp_full_disk_is_507_no_partial_and_next_client_served(lab: TestLab, client1: Host,
                                                                client2: Host) -> None:
    server = spare_ftp(lab, "ftp-full", tmpfs=[f"{UPLOADS}:{DISK}"], volumes=[])
    try:
        before = store_earlier_uploads(client1, "ftp-full", {"earlier.bin": 256 * KB})
        # An upload that cannot fit is refused before its body is sent.
        early = client1.check("ftp_put_then", module=MODULE, variant="ftp", host="ftp-full",
                              filename="huge.bin", size=4 * MB, then=[{"action": "list"}])
        assert (early["first"]["status"], early["final"]) == (507, None)
        assert early["then"][0]["status"] == 200
        assert_no_upload_lost(before, server)
        # Two uploads that each fit but not together: the second to need space
        # meets ENOSPC in the middle of its body. It replaces earlier.bin,
        # which must come out of it untouched.
        gate = "/tmp/ftp-full-gate"
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(client1.check, "ftp_put_gated", module=MODULE, variant="ftp",
                                host="ftp-full", filename="earlier.bin", size=1536 * KB, gate=gate,
                                seed=3, then=[{"action": "list"}])
            half_in = wait_until(lambda: partial_sizes(server) == [768 * KB], EFFECT_TIMEOUT)
            second = client2.check("ftp_put_then", module=MODULE, variant="ftp", host="ftp-full",
                                   filename="b.bin", size=900 * KB, seed=7)
            open_gate((client1, gate))
            cut = first.result()
        assert half_in, "the first upload never got half way"
        assert (second["final"]["status"], second["final"]["sha256"]) == (201, second["sha256"])
        assert (cut["first"]["status"], cut["final"]["status"]) == (200, 507), cut
        assert cut["then"][0]["status"] == 200  # the rest was read and dropped: still in step
        after = assert_no_upload_lost({**before, "b.bin": second["sha256"]}, server)
        assert set(after) == {"earlier.bin", "b.bin"}
        # The failed upload's space is free again: the next client is served.
        store_earlier_uploads(client2, "ftp-full", {"after.bin": 64 * KB})
        assert_no_upload_lost(before, server)
    finally:
        lab.remove(server)


# --- the wire: bytes past filesize, digests, planted links ----------------------------


@pytest.mark.parametrize(("extra", "next_status"), [('{"action": "list"}', 200),
                                                     ("garbage after the body", 400)])
def test_ftp_bytes_beyond_filesize_are_next_request_not_file(
        lab: TestLab, client1: Host, extra: str, next_status: int) -> None:
    server = lab.host(FTP.host)
    before = stored(server)
    name = f"exact-{next_status}.bin"
    result = client1.check("ftp_put_extra", module=MODULE, variant="ftp",
                           filename=name, size=100_000, extra=extra)
    assert result["final"]["status"] == 201 and result["final"]["filesize"] == 100_000
    assert result["next"]["status"] == next_status
    if next_status == 200:
        assert {"name": name, "size": 100_000} in result["next"]["files"]
    after = assert_no_upload_lost(before, server, replaced=(name,))
    assert after[name] == result["sha256"]


def test_ftp_digest_mismatch_is_422_and_earlier_upload_kept(lab: TestLab,
                                                            client1: Host) -> None:
    server = lab.host(FTP.host)
    before = {**stored(server), **store_earlier_uploads(client1, FTP.host,
                                                        {"digest.bin": 200_000})}
    result = client1.check("ftp_put_then", module=MODULE, variant="ftp",
                           filename="digest.bin", size=200_000, seed=5,
                           sha256=before["digest.bin"])  # a claim the new data won't match
    assert (result["first"]["status"], result["final"]["status"]) == (200, 422)
    assert result["final"]["sha256"] == result["sha256"]
    assert_no_upload_lost(before, server)


def test_ftp_planted_symlink_is_neither_followed_nor_replaced(lab: TestLab,
                                                              client1: Host) -> None:
    server = lab.host(FTP.host)
    before = {**stored(server), **store_earlier_uploads(client1, FTP.host,
                                                        {"victim.bin": 10_000})}
    assert server.run("ln", "-s", "victim.bin", f"{UPLOADS}/planted").exit_code == 0
    try:
        put = client1.check("ftp_put_then", module=MODULE, variant="ftp",
                            filename="planted", size=10_000, seed=9,
                            then=[{"action": "get", "filename": "planted"}])
        assert put["first"]["status"] == 409 and put["final"] is None
        assert put["then"][0]["status"] == 404  # and get does not follow it either
        assert server.run("test", "-L", f"{UPLOADS}/planted").exit_code == 0
        assert_no_upload_lost(before, server)
    finally:
        server.run("rm", "-f", f"{UPLOADS}/planted")


# --- docker kill in the middle of an upload -------------------------------------------


def test_ftp_kill_mid_upload_keeps_every_completed_upload(lab: TestLab, client1: Host) -> None:
    server = spare_ftp(lab, "ftp-kill")
    try:
        before = store_earlier_uploads(client1, "ftp-kill", {
            "empty.bin": 0, "small.bin": 1000, "victim.bin": 3 * MB, "big.bin": 8 * MB})
        assert stored(server) == before
        with ThreadPoolExecutor(1) as pool:
            cut = pool.submit(client1.check, "ftp_stalled_put", variant="ftp", host="ftp-kill",
                              filename="victim.bin", size=8 * MB, send=2 * MB, wait=60)
            assert wait_until(lambda: partial_sizes(server) == [2 * MB], EFFECT_TIMEOUT)
            server.container.kill()  # SIGKILL: no cleanup runs
            server.container.wait(timeout=EFFECT_TIMEOUT)
            lab.remove(server)
            server = spare_ftp(lab, "ftp-kill")  # a new container, the same volume
            assert cut.result()["answer"]["status"] == 200  # the upload had begun
        assert "swept_partials=1" in server.logs(), server.logs()
        after = assert_no_upload_lost(before, server)
        assert after == before
        fetched = client1.check("ftp_get", variant="ftp", host="ftp-kill", filename="victim.bin")
        assert fetched["sha256"] == before["victim.bin"]  # and it is served
    finally:
        lab.remove(server)


# --- slow and silent clients ----------------------------------------------------------


@pytest.fixture(scope="module")
def slow_server(lab: TestLab) -> Iterator[Host]:
    server = spare_ftp(lab, "ftp-slow", "--idle-timeout", str(IDLE_SECONDS))
    try:
        yield server
    finally:
        lab.remove(server)


def test_ftp_byte_per_second_uploader_is_served(lab: TestLab, client1: Host,
                                                 slow_server: Host) -> None:
    before = stored(slow_server)
    size = 2 * IDLE_SECONDS  # the whole upload lasts twice the idle timeout
    result = client1.check("ftp_put_trickle", module=MODULE, variant="ftp", host="ftp-slow",
                           filename="trickle.bin", size=size, interval=1.0)
    assert (result["final"]["status"], result["final"]["sha256"]) == (201, result["sha256"])
    after = assert_no_upload_lost(before, slow_server, replaced=("trickle.bin",))
    assert after["trickle.bin"] == result["sha256"]




UNREAD_SIZE = 32 * MB  # far beyond the socket buffers of both ends
UNREAD_CLIENTS = 4


def test_ftp_client_not_reading_a_get_is_dropped_memory_bounded(
        lab: TestLab, client1: Host, client2: Host, slow_server: Host,
        record_property: pytest.RecordProperty) -> None:
    before = {**stored(slow_server), **store_earlier_uploads(client1, "ftp-slow",
                                                             {"unread.bin": UNREAD_SIZE})}
    idle_closes = slow_server.logs().count("reason=idle-timeout")
    memory_before = slow_server.resources()
    gate = "/tmp/ftp-unread-gate"
    samples = []
    with ThreadPoolExecutor(1) as pool:
        readers = pool.submit(client1.check, "ftp_get_unread", module=MODULE, variant="ftp",
                              host="ftp-slow", filename="unread.bin", gate=gate,
                              count=UNREAD_CLIENTS)

        def all_dropped() -> bool:
            samples.append(slow_server.resources())
            return (slow_server.logs().count("reason=idle-timeout") >=
                    idle_closes + UNREAD_CLIENTS)

        dropped = wait_until(all_dropped, EFFECT_TIMEOUT)
        open_gate((client1, gate))
        result = readers.result()
    memory_after = slow_server.resources()
    assert dropped, f"the server did not drop its {UNREAD_CLIENTS} silent readers"
    for connection in result["connections"]:  # each got less than the file, then the end
        assert connection["received"] < UNREAD_SIZE and connection["ended"] in ("eof", "reset")
    grew = {key: max(s[key] for s in [*samples, memory_after]) - memory_before[key]
            for key in ("anon", "server_hwm")}
    record_property("figures", f"ftp gets never read: memory before {memory_before}, "
                    f"after {memory_after}, growth {grew}; "
                    f"readers got {result['connections']}")
    # Buffering the file for a reader would cost UNREAD_SIZE per reader; the
    # server holds one read chunk per connection.
    assert grew["server_hwm"] < UNREAD_SIZE, grew
    assert grew["anon"] < UNREAD_SIZE, grew
    listing = client2.check("ftp_put_then", module=MODULE, variant="ftp", host="ftp-slow",
                            filename="next.bin", size=1000, then=[{"action": "list"}])
    assert listing["final"]["status"] == 201  # the next client is served
    assert_no_upload_lost(before, slow_server)


def stalled_upload(client: Host, server: Host, name: str) -> dict:
    """Stall an upload on ftp-slow until it is dropped; completed uploads kept, nothing left."""
    before = {**stored(server), **store_earlier_uploads(client, "ftp-slow",
                                                        {f"before-{name}": 50_000})}
    result = client.check("ftp_stalled_put_answers", module=MODULE, variant="ftp", host="ftp-slow",
                          filename=name, size=MB, send=1000)
    assert result["first"]["status"] == 200 and result["ended"] in ("eof", "reset"), result
    after = assert_no_upload_lost(before, server)
    assert name not in after
    return result


def test_ftp_stalled_upload_dropped_and_completed_uploads_kept(client1: Host,
                                                               slow_server: Host) -> None:
    result = stalled_upload(client1, slow_server, "stalled-1.bin")
    assert all(a["status"] == 408 for a in result["answers"]), result  # nothing else is said


def test_ftp_stalled_upload_gets_408_before_the_close(client1: Host, slow_server: Host) -> None:
    result = stalled_upload(client1, slow_server, "stalled-2.bin")
    assert [a["status"] for a in result["answers"]] == [408], result
