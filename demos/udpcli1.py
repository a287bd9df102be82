"""udpcli1.py: the tutorial's connectionless client (Python 3 port).

Sends each line typed on stdin as a datagram and prints the reply; a blank line
ends.  Like the original it waits forever if no reply comes.
Usage: udpcli1.py [PORT]
"""

import sys
from socket import AF_INET, SOCK_DGRAM, socket

port = int(sys.argv[1]) if len(sys.argv) > 1 else 9999
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
