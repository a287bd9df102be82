"""SockServTCP.py: the tutorial's SocketServer upper server over TCP (Python 3 port).

Without a mixin it serves one client at a time, as the tutorial first shows.
"""

import argparse
import socketserver
import sys


class UCHandler(socketserver.StreamRequestHandler):
    def handle(self):
        while 1:
            line = self.rfile.readline().strip()
            if not line:
                break
            self.wfile.write(line.upper() + b"\n")


parser = argparse.ArgumentParser(description=__doc__)
# Usage errors as one line, like the asyncnet demos (argparse adds the usage text).
parser.error = lambda message: parser.exit(
    2, "%s: error: %s (see --help)\n" % (parser.prog, message)
)
parser.add_argument("port", nargs="?", type=int, default=9999, help="default 9999; 0 = any free")
mixin = parser.add_mutually_exclusive_group()
mixin.add_argument("--threading", action="store_true", help="a thread per client")
mixin.add_argument("--forking", action="store_true", help="a process per client")
args = parser.parse_args()
if not 0 <= args.port <= 65535:
    parser.error("port must be 0-65535")
server_class = socketserver.TCPServer
if args.threading:
    server_class = socketserver.ThreadingTCPServer
elif args.forking:
    server_class = socketserver.ForkingTCPServer
server_class.allow_reuse_address = True
server_class.daemon_threads = True
server_class.request_queue_size = 128
try:
    server = server_class(("127.0.0.1", args.port), UCHandler)
except OSError as e:
    sys.exit(
        "SockServTCP.py: cannot listen on 127.0.0.1:%d: %s; choose another port (0 = any free)"
        % (args.port, e.strerror)
    )
print("listening on %s:%d" % server.server_address, flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
server.server_close()
