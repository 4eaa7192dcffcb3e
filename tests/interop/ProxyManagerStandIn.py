"""A stand-in for DIRAC's ``Framework/ProxyManager``, served by a real DIRAC 8.0 process.

DIRAC 8.0's StorageElementProxy asks the ProxyManager for each caller's proxy before every
``prepareFile``/``uploadFile``/``callProxyMethod`` (``downloadVOMSProxy``: the stored proxy's
key strength, then a proxy signed for the service's request). The real one needs MySQL and
VOMS; this handler answers those two calls by signing the request with the one proxy file
named by its ``ProxyFile`` option (the test user's). Only for tests: served through
``HandlerPath`` (DIRAC requires the class to be named like the module).
"""

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.DISET.RequestHandler import RequestHandler
from DIRAC.Core.Security.X509Chain import X509Chain


class ProxyManagerStandIn(RequestHandler):
    types_getStoredProxyStrength = [str, str, [str, type(None)]]

    def export_getStoredProxyStrength(self, userDN, userGroup, vomsAttribute=None):
        return S_OK(2048)

    types_getVOMSProxy = [str, str, str, int, [str, type(None)]]

    def export_getVOMSProxy(self, userDN, userGroup, requestPem, requiredLifetime,
                            vomsAttribute=None):
        chain = X509Chain()
        result = chain.loadProxyFromFile(self.getCSOption("ProxyFile", ""))
        if not result["OK"]:
            return result
        identity = chain.getCredentials()
        if not identity["OK"] or identity["Value"].get("identity") != userDN:
            return S_ERROR(f"No proxy stored for {userDN}")
        return chain.generateChainFromRequestString(requestPem, lifetime=requiredLifetime)
