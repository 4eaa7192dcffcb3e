"""What the StorageElementProxy handler and the HTTP front share: the staged-file cache
area and its purge (:mod:`.cache`), the per-caller namespace (:mod:`.namespace`) and
the expiring download-key register with its keys (:mod:`.cache`, :mod:`.keys`).

Both ``seproxy.handler`` and ``seproxy.http`` import from here; neither imports the other.
"""
