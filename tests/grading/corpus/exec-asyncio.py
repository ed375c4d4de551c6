# variant: exec
# kind: correct
# mistake: asyncio in one event loop instead of socklab's thread per client: streams for the
#   three ports, asyncio subprocesses read by two tasks, asyncio.wait for the time limit; its
#   own banner, its own line for an empty output, its own error messages, no command slots
# expect-fail:
"""exec-server for socklab in one asyncio loop: naive 9000, handshake 9001, framed 9002.

Every command runs with /bin/sh -c as runner (uid and gid 1001), in a session of
its own so that the time limit and the output cap can kill all of it.
"""

import asyncio
import contextlib
import json
import os
import signal
import struct
import subprocess

PORTS = {"naive": 9000, "handshake": 9001, "framed": 9002}
BANNER = b"hi! type a shell command\n"
NO_OUTPUT = b"(the command printed nothing)\n"
RUNNER = 1001
WORKDIR = "/srv/exec"
TIME_LIMIT = 30.0
CAP = 32 << 20
READ = 1 << 16
MAX_REQUEST = 1 << 20
LENGTH = struct.Struct("!I")


async def run(command):
    """(status, stdout, stderr, truncated, timed_out) of ``command`` (bytes)."""
    try:
        process = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=WORKDIR, start_new_session=True, user=RUNNER,
            group=RUNNER, extra_groups=[], env={"PATH": "/usr/bin:/bin", "HOME": WORKDIR})
    except (OSError, ValueError) as error:
        return 126, b"", f"could not start it: {error}\n".encode(), False, False
    out, err = bytearray(), bytearray()
    full = asyncio.Event()

    async def pump(stream, kept):
        while chunk := await stream.read(READ):
            room = CAP - len(out) - len(err)
            kept += chunk[:room]
            if len(chunk) > room:
                full.set()
                return

    async def everything():
        await asyncio.gather(pump(process.stdout, out), pump(process.stderr, err))
        await process.wait()

    work = asyncio.ensure_future(everything())
    capped = asyncio.ensure_future(full.wait())
    done, _ = await asyncio.wait({work, capped}, timeout=TIME_LIMIT,
                                 return_when=asyncio.FIRST_COMPLETED)
    truncated = full.is_set()
    timed_out = not done
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for task in (work, capped):
        task.cancel()
    status = await process.wait()
    return status, bytes(out), bytes(err), truncated, timed_out


async def naive(reader, writer):
    writer.write(BANNER)
    await writer.drain()
    while command := await reader.read(READ):
        _, out, err, _, _ = await run(command)
        writer.write(out or err or NO_OUTPUT)
        await writer.drain()


async def handshake(reader, writer):
    waiting = None
    while chunk := await reader.read(READ):
        if waiting is not None and chunk.startswith(b"start"):
            writer.write(waiting)
            await writer.drain()
            waiting, chunk = None, chunk[5:]
            if not chunk.strip():
                continue
        status, out, err, truncated, timed_out = await run(chunk)
        waiting = out or err
        flags = [b"truncated"] * truncated + [b"timed-out"] * timed_out
        writer.write(b"|".join([b"Ready", b"%d" % len(waiting), b"%d" % status, *flags]))
        await writer.drain()


async def reply(writer, header, out=b"", err=b""):
    header = json.dumps({**header, "stdout_bytes": len(out), "stderr_bytes": len(err)})
    for data in (header.encode(), out, err):
        writer.write(LENGTH.pack(len(data)))
        writer.write(data)
    await writer.drain()


async def refuse(writer, why):
    await reply(writer, {"exit_status": None, "truncated": False, "timed_out": False,
                         "error": why})


async def framed(reader, writer):
    while True:
        (length,) = LENGTH.unpack(await reader.readexactly(LENGTH.size))
        if length > MAX_REQUEST:
            await refuse(writer, f"a request of {length} bytes is too long")
            return
        payload = await reader.readexactly(length)
        try:
            request = json.loads(payload.decode("utf-8"))
            command = request["cmd"].encode()
        except (ValueError, TypeError, KeyError, AttributeError):
            await refuse(writer, "expected {\"cmd\": \"<command>\"}")
            continue
        status, out, err, truncated, timed_out = await run(command)
        await reply(writer, {"exit_status": status, "truncated": truncated,
                             "timed_out": timed_out}, out, err)


def serving(protocol):
    async def client(reader, writer):
        try:
            await protocol(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client left or reset: it alone
        finally:
            writer.close()
    return client


async def main():
    servers = [await asyncio.start_server(serving(protocol), "0.0.0.0", PORTS[name],
                                          backlog=128)
               for name, protocol in (("naive", naive), ("handshake", handshake),
                                      ("framed", framed))]
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    asyncio.run(main())
