"""X509 credentials: chains and RFC 3820 proxies (x509), the credential dict (credentials),
a development PKI and proxy creation (pki), and where DIRAC looks for them (locations).
Helpers: der (tiny DER codec), names (slash DNs, OpenSSL subject hash), extensions
(proxyCertInfo, DIRAC group, VOMS)."""
