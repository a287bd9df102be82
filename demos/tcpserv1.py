"""tcpserv1.py: the tutorial's bind/accept server (Python 3 port).

Serves one client at a time: reads lines through makefile() and answers each in
capitals; a blank line (or the client closing) ends that client's session.
Usage: tcpserv1.py [PORT]
"""

import sys
from socket import AF_INET, SO_REUSEADDR, SOCK_STREAM, SOL_SOCKET, socket

port = int(sys.argv[1]) if len(sys.argv) > 1 else 9999
s = socket(AF_INET, SOCK_STREAM)
s.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(5)  # max queued connections
print("listening on %s:%d" % s.getsockname(), flush=True)
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
