"""seproxy inside a DIRAC installation: the Configuration Server and the ProxyManager.

:mod:`seproxy.dirac.configuration` feeds a :class:`~seproxy.config.Config` from the
site's Configuration Servers (initial fetch, background refresh, failover, a last good
copy on disk); :mod:`seproxy.dirac.proxymanager` downloads callers' proxies from the
site's ProxyManager for ``CredentialSource = ProxyManager``.

Layering: this package sits above ``seproxy.rpc`` (it is a DISET client) and below the
handler and the CLI that use it; the config layer and the service framework never
import it (they know only ``Config.set_remote`` and ``Config.add_reload_hook``).
"""
