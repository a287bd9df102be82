"""SockServUDP.py: the tutorial's SocketServer upper server over UDP (Python 3 port).

Usage: SockServUDP.py [--threading | --forking] [PORT]
"""

import socketserver
import sys


class UCHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(data.upper(), self.client_address)


args = [a for a in sys.argv[1:] if not a.startswith("--")]
port = int(args[0]) if args else 9999
server_class = socketserver.UDPServer
if "--threading" in sys.argv:
    server_class = socketserver.ThreadingUDPServer
elif "--forking" in sys.argv:
    server_class = socketserver.ForkingUDPServer
server_class.daemon_threads = True
server = server_class(("127.0.0.1", port), UCHandler)
print("listening on %s:%d" % server.server_address, flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
server.server_close()
