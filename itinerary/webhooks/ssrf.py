"""`--webhook-deny-private`: custom webhooks may not reach loopback, private or link-local hosts.

Checked twice. Before sending, the URL's host is resolved and every address
checked, for a clear refusal. Then the connection itself is checked: the
session used for custom URLs connects through `CheckedConnection`, which looks
at the address the socket actually reached, so a name that resolves to a public
address for the first check and to 169.254.169.254 for the connection (DNS
rebinding) is refused too. With an egress proxy in front (which then does this
job), leave the flag off: the proxy's own address would be the one checked.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

TAG = "refused by --webhook-deny-private"
CGNAT = ipaddress.ip_network("100.64.0.0/10")


def forbidden(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_reserved
        or ip.is_multicast
        or (ip.version == 4 and ip in CGNAT)
    )


def check_url(url: str) -> str | None:
    """Why `url`'s host may not be reached, or None."""
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    for info in infos:
        if forbidden(str(info[4][0])):
            return (
                f"{TAG}: {host} resolves to {info[4][0]}, a loopback, private or link-local address"
            )
    return None


class _Checked:
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        peer = sock.getpeername()[0]
        if forbidden(peer):
            sock.close()
            # Mixed into urllib3's HTTPConnection below: `self` is one.
            raise NewConnectionError(self, f"{TAG}: connected to {peer}, a private address")  # type: ignore[arg-type]
        return sock


class CheckedHTTPConnection(_Checked, HTTPConnection):
    pass


class CheckedHTTPSConnection(_Checked, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = CheckedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = CheckedHTTPSConnection


class GuardedAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def guarded_session(concurrency: int) -> requests.Session:
    session = requests.Session()
    adapter = GuardedAdapter(pool_connections=64, pool_maxsize=max(10, concurrency), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
