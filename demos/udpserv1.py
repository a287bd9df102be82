"""udpserv1.py: the tutorial's connectionless server (Python 3 port).

Answers every datagram with the same data in capitals.  Usage: udpserv1.py [PORT]
"""

import sys
from socket import AF_INET, SOCK_DGRAM, socket

port = int(sys.argv[1]) if len(sys.argv) > 1 else 9999
s = socket(AF_INET, SOCK_DGRAM)
s.bind(("127.0.0.1", port))
print("listening on %s:%d" % s.getsockname(), flush=True)
while 1:
    data, addr = s.recvfrom(1024)
    print("Connection from", addr, flush=True)
    s.sendto(data.upper(), addr)
