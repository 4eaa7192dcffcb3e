"""The interop test handler, served unchanged by a real DIRAC service and by seproxy.

DIRAC loads it through the service option ``HandlerPath = InteropHandler.py``
(the directory of this file on ``PYTHONPATH``; DIRAC requires the class to be
named like the module, hence the CamelCase file name).  seproxy loads the same
class (``tests.interop.InteropHandler.InteropHandler``).  Inside a DIRAC venv
it subclasses DIRAC's ``RequestHandler``; elsewhere seproxy's.

Service options read in ``initializeHandler``:

``StoragePath``
    folder where ``transfer_fromClient`` stores and ``transfer_toClient`` reads
    files (fileIDs are plain names: no ``/``, no ``..``).
``MaxFileSize``
    byte limit given to ``networkToDataSink`` (0: none).

Methods (besides the framework built-ins ping/whoami/echo/refreshConfiguration):

==================  =================  ===============================================
method              types_             behaviour
==================  =================  ===============================================
echoValue(v)        []                 S_OK(v): echo of any DISET value
typed(s, i, l, d)   [str, int,         S_OK([s, i, l, d]): argument type checks,
                    (list, tuple),     too few arguments
                    dict]
optionalArgs(a, b)  [str, None]        S_OK([a, b]); ``None`` skips the check
raiseError(msg)     [str]              raises ``ValueError(msg)``
returnNonDict()     []                 returns a str instead of S_OK/S_ERROR
returnBadDict()     []                 returns ``{"OK": True}`` (no ``Value``)
returnError(m, e)   [str, int]         S_ERROR(e, m)
whoamiLike()        []                 the caller's credential dict minus x509Chain,
                                       as the handler sees it
adminOnly()         [] auth CSAdmin.   S_OK("admin")
getOption(name)     [str]              S_OK(service option ``name`` or None)
listStored()        []                 S_OK(sorted names in StoragePath)
noTypes()           (no types_)        exported without types_: handler error
==================  =================  ===============================================
"""

import os

try:  # inside a DIRAC venv: DIRAC's framework
    from DIRAC import S_ERROR, S_OK
    from DIRAC.Core.DISET.RequestHandler import RequestHandler
except ImportError:  # seproxy
    from seproxy.returnvalues import S_ERROR, S_OK
    from seproxy.rpc.server.handler import RequestHandler


class InteropHandler(RequestHandler):
    storage_path = ""
    max_file_size = 0

    @classmethod
    def initializeHandler(cls, serviceInfo):
        cls.storage_path = cls.srv_getCSOption("StoragePath", "") or ""
        cls.max_file_size = int(cls.srv_getCSOption("MaxFileSize", 0) or 0)
        if cls.storage_path:
            os.makedirs(cls.storage_path, exist_ok=True)
        return S_OK()

    types_echoValue = []

    def export_echoValue(self, value):
        return S_OK(value)

    types_typed = [str, int, (list, tuple), dict]

    def export_typed(self, text, number, sequence, mapping):
        return S_OK([text, number, sequence, mapping])

    types_optionalArgs = [str, None]

    def export_optionalArgs(self, first, second):
        return S_OK([first, second])

    types_raiseError = [str]

    def export_raiseError(self, message):
        raise ValueError(message)

    types_returnNonDict = []

    def export_returnNonDict(self):
        return "this is not a result dictionary"

    types_returnBadDict = []

    def export_returnBadDict(self):
        return {"OK": True}

    types_returnError = [str, int]

    def export_returnError(self, message, errno):
        return S_ERROR(errno, message)

    types_whoamiLike = []

    def export_whoamiLike(self):
        credentials = dict(self.getRemoteCredentials())
        credentials.pop("x509Chain", None)
        return S_OK(credentials)

    types_adminOnly = []
    auth_adminOnly = ["CSAdministrator"]

    def export_adminOnly(self):
        return S_OK("admin")

    types_getOption = [str]

    def export_getOption(self, name):
        return S_OK(self.srv_getCSOption(name, None))

    types_listStored = []

    def export_listStored(self):
        if not self.storage_path:
            return S_ERROR("StoragePath not configured")
        return S_OK(sorted(os.listdir(self.storage_path)))

    def export_noTypes(self):
        return S_OK("unreachable")

    # ----- file transfers ------------------------------------------------------------------

    def _path(self, file_id):
        if not self.storage_path:
            raise ValueError("StoragePath not configured")
        if not file_id or "/" in file_id or file_id in (".", "..") or "\0" in file_id:
            raise ValueError(f"bad fileId {file_id!r}")
        return os.path.join(self.storage_path, file_id)

    def transfer_fromClient(self, fileId, token, fileSize, fileHelper):
        try:
            final = self._path(fileId)
        except ValueError as exc:
            return S_ERROR(str(exc))
        if "NoCheckSum" in token:
            fileHelper.disableCheckSum()
        partial = final + ".part"
        with open(partial, "wb") as sink:
            result = fileHelper.networkToDataSink(sink, maxFileSize=self.max_file_size)
        if result["OK"]:
            os.replace(partial, final)
        else:
            os.unlink(partial)
        return result

    def transfer_toClient(self, fileId, token, fileHelper):
        try:
            path = self._path(fileId)
        except ValueError as exc:
            fileHelper.sendEOF()
            return S_ERROR(str(exc))
        if "NoCheckSum" in token:
            fileHelper.disableCheckSum()
        if not os.path.isfile(path):
            fileHelper.sendEOF()
            return S_ERROR(f"File {fileId} does not exist")
        with open(path, "rb") as source:
            return fileHelper.DataSourceToNetwork(source)
