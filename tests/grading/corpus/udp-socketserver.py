# variant: udp
# kind: correct
# mistake: built on socketserver.UDPServer with a request handler (max_packet_size raised to
#   65,535) instead of a hand-written recvfrom/sendto loop
# expect-fail:
"""udp-server for socklab with socketserver: every datagram gets the datagram b"ok"."""

import socketserver


class AckHandler(socketserver.BaseRequestHandler):
    def handle(self):
        _data, sock = self.request  # for UDP, the request is (data, server socket)
        sock.sendto(b"ok", self.client_address)


class Server(socketserver.UDPServer):
    allow_reuse_address = True
    max_packet_size = 65535  # the default 8192 would cut large datagrams


if __name__ == "__main__":
    with Server(("", 9999), AckHandler) as server:
        server.serve_forever()
