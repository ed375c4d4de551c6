# variant: twisted
# kind: correct
# mistake: the twisted variant's echo written with asyncio streams instead of Twisted: one
#   coroutine per client, back-pressure from drain(), the listening socket made by hand so
#   that asyncio never starts its resolver thread
# expect-fail:
"""Echo server on port 8000, the twisted-server's contract, written with asyncio."""

import asyncio
import contextlib
import socket


async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:  # EOF; what is still buffered goes out on close()
                break
            writer.write(data)
            await writer.drain()  # waits while the client is not reading
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def main():
    # start_server(host=...) resolves the host in a thread of the default executor;
    # with a socket of my own there is nothing to resolve and one thread only.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", 8000))
    server = await asyncio.start_server(echo, sock=sock, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
