"""Server side of DISET: ``Service`` and ``ServiceReactor`` (accept loop, worker pool),
the per-connection steps (:mod:`.worker`, :mod:`.session`, :mod:`.broker`),
``RequestHandler``, authorisation and the handler loader.

The framework knows no particular service: whoever builds a ``Service`` hands it the
handler class (or the built-in handlers by name) and the action table (e.g.
``{"FileTransfer": seproxy.transfer.dispatch.serve_transfer}``).
"""
