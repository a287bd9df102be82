"""udpcli1.py: the tutorial's connectionless client (Python 3 port).

Sends each line typed on stdin as a datagram and prints the reply; a blank line
ends.  Like the original it waits forever if no reply comes.
"""

import argparse
import sys
from socket import AF_INET, SOCK_DGRAM, socket

parser = argparse.ArgumentParser(description=__doc__)
# Usage errors as one line, like the asyncnet demos (argparse adds the usage text).
parser.error = lambda message: parser.exit(
    2, "%s: error: %s (see --help)\n" % (parser.prog, message)
)
parser.add_argument("port", nargs="?", type=int, default=9999, help="default 9999")
port = parser.parse_args().port
if not 1 <= port <= 65535:
    parser.error("port must be 1-65535")
s = socket(AF_INET, SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print("using", s.getsockname(), file=sys.stderr)
server = ("127.0.0.1", port)
while 1:
    line = sys.stdin.readline().rstrip("\n")
    if not line:
        break
    s.sendto(line.encode(), server)
    data, addr = s.recvfrom(1024)
    print(data.decode(), flush=True)
s.close()
