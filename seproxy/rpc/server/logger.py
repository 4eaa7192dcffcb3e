"""A ``logging`` adapter with DIRAC's ``gLogger`` method names.

Handler code written for DIRAC calls ``self.log.notice(msg, varMsg)``,
``self.log.verbose(...)``, ``self.log.always(...)``; these map onto the standard
``logging`` levels of a ``seproxy.*`` logger, the second argument appended.
"""

from __future__ import annotations

import logging
from typing import Any


class DiracLogger:
    """gLogger-like facade over ``logging.getLogger(name)``."""

    def __init__(self, name: str) -> None:
        self._log = logging.getLogger(name)

    def getSubLogger(self, name: str) -> DiracLogger:  # noqa: N802 (DIRAC name)
        return DiracLogger(f"{self._log.name}.{name}")

    def _emit(self, level: int, msg: Any, var_msg: Any = "", exc_info: Any = None) -> bool:
        if self._log.isEnabledFor(level):
            text = f"{msg} {var_msg}" if var_msg not in ("", None) else str(msg)
            self._log.log(level, "%s", text, exc_info=exc_info, stacklevel=3)
        return True

    def debug(self, msg: Any, varMsg: Any = "") -> bool:  # noqa: N803
        return self._emit(logging.DEBUG, msg, varMsg)

    verbose = debug

    def info(self, msg: Any, varMsg: Any = "") -> bool:  # noqa: N803
        return self._emit(logging.INFO, msg, varMsg)

    notice = always = info

    def warn(self, msg: Any, varMsg: Any = "") -> bool:  # noqa: N803
        return self._emit(logging.WARNING, msg, varMsg)

    warning = warn

    def error(self, msg: Any, varMsg: Any = "") -> bool:  # noqa: N803
        return self._emit(logging.ERROR, msg, varMsg)

    def fatal(self, msg: Any, varMsg: Any = "") -> bool:  # noqa: N803
        return self._emit(logging.CRITICAL, msg, varMsg)

    def exception(self, msg: Any = "", varMsg: Any = "", lException: Any = None, lExcInfo: Any = None) -> bool:  # noqa: N803
        return self._emit(logging.ERROR, msg, varMsg, exc_info=lExcInfo or lException or True)
