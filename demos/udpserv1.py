"""udpserv1.py: the tutorial's connectionless server (Python 3 port).

Answers every datagram with the same data in capitals.
"""

import argparse
import sys
from socket import AF_INET, SOCK_DGRAM, socket

parser = argparse.ArgumentParser(description=__doc__)
# Usage errors as one line, like the asyncnet demos (argparse adds the usage text).
parser.error = lambda message: parser.exit(
    2, "%s: error: %s (see --help)\n" % (parser.prog, message)
)
parser.add_argument("port", nargs="?", type=int, default=9999, help="default 9999; 0 = any free")
port = parser.parse_args().port
if not 0 <= port <= 65535:
    parser.error("port must be 0-65535")
s = socket(AF_INET, SOCK_DGRAM)
try:
    s.bind(("127.0.0.1", port))
except OSError as e:
    sys.exit(
        "udpserv1.py: cannot listen on 127.0.0.1:%d: %s; choose another port (0 = any free)"
        % (port, e.strerror)
    )
print("listening on %s:%d" % s.getsockname(), flush=True)
try:
    while 1:
        data, addr = s.recvfrom(1024)
        print("Connection from", addr, flush=True)
        s.sendto(data.upper(), addr)
except KeyboardInterrupt:
    pass
