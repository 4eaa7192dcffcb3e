"""The DIRAC release whose DISET behaviour seproxy reproduces.

Sent as ``clientVersion`` in proposals and returned as ``version`` by ``ping``
(a DIRAC client cannot tell the difference, PROTOCOL.md 4.3 and 7.8).
"""

DIRAC_VERSION = "9.1.22"
