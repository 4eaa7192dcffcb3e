"""Default bounds shared by the wire decoders and the frame parser.

DIRAC has no bound at all (PROTOCOL.md 2.3, 3.1); seproxy refuses input beyond
these unless the caller passes other values.
"""

from __future__ import annotations

#: Largest payload a decoder accepts (bytes). A 1 MiB transfer chunk is ~1.4 MB in JSON.
DEFAULT_MAX_SIZE = 64 * 1024 * 1024
#: Deepest container nesting a decoder accepts (DISET messages use fewer than 10 levels).
DEFAULT_MAX_DEPTH = 200
#: Largest frame the frame parser buffers (bytes), checked before reading the body.
DEFAULT_MAX_FRAME_SIZE = DEFAULT_MAX_SIZE
