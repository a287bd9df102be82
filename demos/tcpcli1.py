"""tcpcli1.py: the tutorial's connection-oriented client (Python 3 port).

Reads lines from the user, sends each to the server and prints the reply, until
a blank line, which it sends on before closing.
"""

import argparse
import sys
from socket import AF_INET, SOCK_STREAM, socket

parser = argparse.ArgumentParser(description=__doc__)
# Usage errors as one line, like the asyncnet demos (argparse adds the usage text).
parser.error = lambda message: parser.exit(
    2, "%s: error: %s (see --help)\n" % (parser.prog, message)
)
parser.add_argument("port", nargs="?", type=int, default=9999, help="default 9999")
port = parser.parse_args().port
if not 1 <= port <= 65535:
    parser.error("port must be 1-65535")
s = socket(AF_INET, SOCK_STREAM)
try:
    s.connect(("127.0.0.1", port))
except OSError as e:
    sys.exit(
        "tcpcli1.py: cannot connect to 127.0.0.1:%d: %s; is the server running?"
        % (port, e.strerror)
    )
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
