"""SockServTCP.py: the tutorial's SocketServer upper server over TCP (Python 3 port).

Usage: SockServTCP.py [--threading | --forking] [PORT]
Without a mixin it serves one client at a time, as the tutorial first shows.
"""

import socketserver
import sys


class UCHandler(socketserver.StreamRequestHandler):
    def handle(self):
        while 1:
            line = self.rfile.readline().strip()
            if not line:
                break
            self.wfile.write(line.upper() + b"\n")


args = [a for a in sys.argv[1:] if not a.startswith("--")]
port = int(args[0]) if args else 9999
server_class = socketserver.TCPServer
if "--threading" in sys.argv:
    server_class = socketserver.ThreadingTCPServer
elif "--forking" in sys.argv:
    server_class = socketserver.ForkingTCPServer
server_class.allow_reuse_address = True
server_class.daemon_threads = True
server_class.request_queue_size = 128
server = server_class(("127.0.0.1", port), UCHandler)
print("listening on %s:%d" % server.server_address, flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
server.server_close()
