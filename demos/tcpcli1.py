"""tcpcli1.py: the tutorial's connection-oriented client (Python 3 port).

Reads lines from the user, sends each to the server and prints the reply, until
a blank line, which it sends on before closing.  Usage: tcpcli1.py [PORT]
"""

import sys
from socket import AF_INET, SOCK_STREAM, socket

port = int(sys.argv[1]) if len(sys.argv) > 1 else 9999
s = socket(AF_INET, SOCK_STREAM)
s.connect(("127.0.0.1", port))
print("using", s.getsockname(), file=sys.stderr)
f = s.makefile("rwb")
while 1:
    line = sys.stdin.readline().strip()
    f.write(line.encode() + b"\n")
    f.flush()
    if not line:
        break
    print(f.readline().decode().rstrip("\n"), flush=True)
f.close()
s.close()
