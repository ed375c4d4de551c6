# variant: tcp
# kind: correct
# mistake: built on socketserver.TCPServer (not threaded) with a request handler class,
#   instead of a hand-written accept loop
# expect-fail:
"""tcp-server for socklab with socketserver: one client at a time, upper-case echo."""

import socketserver


class UpperHandler(socketserver.BaseRequestHandler):
    """Serves one connection until the client closes its side."""

    def handle(self):
        while True:
            try:
                data = self.request.recv(65536)
                if not data:
                    return  # socketserver shuts down and closes the socket for me
                self.request.sendall(data.upper())
            except (ConnectionResetError, BrokenPipeError):
                return


class Server(socketserver.TCPServer):
    allow_reuse_address = True
    request_queue_size = 5  # the listen backlog, as in the tutorial


if __name__ == "__main__":
    with Server(("", 9000), UpperHandler) as server:
        server.serve_forever()
