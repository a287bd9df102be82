"""SockServUDP.py: the tutorial's SocketServer upper server over UDP (Python 3 port)."""

import argparse
import socketserver
import sys


class UCHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(data.upper(), self.client_address)


parser = argparse.ArgumentParser(description=__doc__)
# Usage errors as one line, like the asyncnet demos (argparse adds the usage text).
parser.error = lambda message: parser.exit(
    2, "%s: error: %s (see --help)\n" % (parser.prog, message)
)
parser.add_argument("port", nargs="?", type=int, default=9999, help="default 9999; 0 = any free")
mixin = parser.add_mutually_exclusive_group()
mixin.add_argument("--threading", action="store_true", help="a thread per datagram")
mixin.add_argument("--forking", action="store_true", help="a process per datagram")
args = parser.parse_args()
if not 0 <= args.port <= 65535:
    parser.error("port must be 0-65535")
server_class = socketserver.UDPServer
if args.threading:
    server_class = socketserver.ThreadingUDPServer
elif args.forking:
    server_class = socketserver.ForkingUDPServer
server_class.daemon_threads = True
try:
    server = server_class(("127.0.0.1", args.port), UCHandler)
except OSError as e:
    sys.exit(
        "SockServUDP.py: cannot listen on 127.0.0.1:%d: %s; choose another port (0 = any free)"
        % (args.port, e.strerror)
    )
print("listening on %s:%d" % server.server_address, flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
server.server_close()
