"""tcpserv1.py: the tutorial's bind/accept server (Python 3 port).

Serves one client at a time: reads lines through makefile() and answers each in
capitals; a blank line (or the client closing) ends that client's session.
"""

import argparse
import sys
from socket import AF_INET, SO_REUSEADDR, SOCK_STREAM, SOL_SOCKET, socket

parser = argparse.ArgumentParser(description=__doc__)
# Usage errors as one line, like the asyncnet demos (argparse adds the usage text).
parser.error = lambda message: parser.exit(
    2, "%s: error: %s (see --help)\n" % (parser.prog, message)
)
parser.add_argument("port", nargs="?", type=int, default=9999, help="default 9999; 0 = any free")
port = parser.parse_args().port
if not 0 <= port <= 65535:
    parser.error("port must be 0-65535")
s = socket(AF_INET, SOCK_STREAM)
s.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", port))
except OSError as e:
    sys.exit(
        "tcpserv1.py: cannot listen on 127.0.0.1:%d: %s; choose another port (0 = any free)"
        % (port, e.strerror)
    )
s.listen(5)  # max queued connections
print("listening on %s:%d" % s.getsockname(), flush=True)
try:
    while 1:
        sock, addr = s.accept()
        # use socket sock to communicate with client process
        f = sock.makefile("rwb")
        while 1:
            line = f.readline()
            if not line.strip():
                break
            f.write(line.strip().upper() + b"\n")
            f.flush()
        f.close()
        sock.close()
except KeyboardInterrupt:
    pass
