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

import argparse
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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # Usage errors as one line, like the asyncnet demos (argparse adds the usage text).
    parser.error = lambda message: parser.exit(
        2, "%s: error: %s (see --help)\n" % (parser.prog, message)
    )
    parser.add_argument("port", nargs="?", type=int, default=PORT, help="default 5555")
    parser.add_argument("message", nargs="*", help="spew this instead of being the bucket")
    args = parser.parse_args()
    if not 0 <= args.port <= 65535:
        parser.error("port must be 0-65535")
    if args.message:
        spew(" ".join(args.message), port=args.port)
    else:
        try:
            bucket(args.port)
        except KeyboardInterrupt:
            pass
        except OSError as e:
            sys.exit(
                "creosote.py: cannot listen on udp 127.0.0.1:%d: %s; is another bucket"
                " listening? choose another port (0 = any free)" % (args.port, e.strerror)
            )
