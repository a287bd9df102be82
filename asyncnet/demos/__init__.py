"""One runnable module per demo of the tutorial: ``python -m asyncnet.demos.<name>``.

* ``upper``     -- the upper-case service over TCP and UDP (SockServTCP/SockServUDP)
* ``embedding`` -- the upper servers inside somebody else's asyncio program
* ``tour``      -- ``make demo``: every demo against local servers, in one process
"""
