"""creosote.py: the tutorial's Mr. Creosote module (Python 3 port).

spew() sends a debug message to a UDP port in BUFSIZE chunks; it does not matter
whether anything listens.  bucket() prints whatever arrives, the way the slide did
with backticks: repr() of the data without its quotes.

Usage: creosote.py [PORT]            be the bucket (prints "listening on ...")
       creosote.py PORT MESSAGE...   spew the message

Both ends bind 127.0.0.1 where the slide bound '' (every interface), so this
port only ever talks to this machine.  The asyncnet bucket
(python -m asyncnet.demos.creosote listen) reads what spew() sends, and this bucket
reads what the asyncnet emitter sends (framed messages show their header escaped).
"""

import sys
from socket import AF_INET, SOCK_DGRAM, socket

PORT = 5555
BUFSIZE = 1024


def spew(msg, host="127.0.0.1", port=PORT):
    s = socket(AF_INET, SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    if isinstance(msg, str):
        msg = msg.encode()
    while msg:
        s.sendto(msg[:BUFSIZE], (host, port))
        msg = msg[BUFSIZE:]
    s.close()


def bucket(port=PORT):
    s = socket(AF_INET, SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    print("listening on %s:%d" % s.getsockname(), flush=True)
    while 1:
        data, _addr = s.recvfrom(BUFSIZE)
        print(repr(data)[2:-1], flush=True)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else PORT
    if len(sys.argv) > 2:
        spew(" ".join(sys.argv[2:]), port=port)
    else:
        try:
            bucket(port)
        except KeyboardInterrupt:
            pass
