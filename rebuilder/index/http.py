"""The one place HTTP sessions are made: User-Agent, TLS trust, retries, pool size.

TLS is verified against the operating system's trust store (via ``truststore``), so a
CA that the machine trusts is trusted here too, whereas ``requests`` alone would only
trust its bundled ``certifi`` list. An explicit ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``
(read by ``requests`` when ``trust_env`` is on) is honoured on top of that.
"""

from __future__ import annotations

import logging
import platform
import ssl
from dataclasses import dataclass
from typing import Any

import requests
import truststore
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from rebuilder import __version__

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class HttpSettings:
    """How sessions talk to the network; the defaults suit a polite, patient client."""

    retries: int = 3
    backoff_factor: float = 0.5
    backoff_max: float = 10.0
    pool_maxsize: int = 8
    system_trust_store: bool = True


def user_agent() -> str:
    """``pypi-rebuilder/<version>`` plus the Python and ``requests`` versions."""
    return (
        f"pypi-rebuilder/{__version__} "
        f"{platform.python_implementation()}/{platform.python_version()} "
        f"requests/{requests.__version__}"
    )


def system_ssl_context() -> ssl.SSLContext:
    """A client TLS context that verifies against the operating system's trust store."""
    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class _SystemTrustAdapter(HTTPAdapter):
    """An adapter whose pools verify TLS with the system trust store."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        max_retries: Retry,
        pool_connections: int,
        pool_maxsize: int,
    ) -> None:
        self._ssl_context = ssl_context
        super().__init__(
            pool_connections=pool_connections, pool_maxsize=pool_maxsize, max_retries=max_retries
        )

    def init_poolmanager(
        self,
        connections: int,
        maxsize: int,
        block: bool = False,
        **pool_kwargs: Any,  # noqa: ANN401 - passed through to urllib3, as the base class does
    ) -> None:
        pool_kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def cert_verify(
        self,
        conn: Any,  # noqa: ANN401 - a urllib3 pool, untyped in the base class
        url: str,
        verify: bool | str,
        cert: object,
    ) -> None:
        if verify is True and url.lower().startswith("https"):
            # requests would point the pool at certifi's bundle here; the system
            # context configured in init_poolmanager must decide instead.
            conn.cert_reqs = "CERT_REQUIRED"
            conn.ca_certs = None
            conn.ca_cert_dir = None
            return
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]


def make_retry(settings: HttpSettings) -> Retry:
    """Retries for idempotent requests on connection trouble and 5xx answers."""
    return Retry(
        total=settings.retries,
        connect=settings.retries,
        read=settings.retries,
        status=settings.retries,
        other=0,
        redirect=False,  # redirects are followed (and checked) by the callers
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        backoff_factor=settings.backoff_factor,
        backoff_max=settings.backoff_max,
        raise_on_status=False,  # the caller turns the last answer into a clear error
        respect_retry_after_header=True,
    )


def make_session(settings: HttpSettings | None = None) -> requests.Session:
    """A ``requests.Session`` with our User-Agent, system TLS trust and retries."""
    settings = settings or HttpSettings()
    session = requests.Session()
    session.headers["User-Agent"] = user_agent()
    retry = make_retry(settings)
    adapter: HTTPAdapter
    if settings.system_trust_store:
        adapter = _SystemTrustAdapter(
            system_ssl_context(),
            max_retries=retry,
            pool_connections=4,
            pool_maxsize=settings.pool_maxsize,
        )
    else:
        adapter = HTTPAdapter(
            max_retries=retry, pool_connections=4, pool_maxsize=settings.pool_maxsize
        )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    log.debug("HTTP session made (retries=%d)", settings.retries)
    return session
