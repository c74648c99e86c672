"""SNS signing certificates: fetched over verified HTTPS, cached per URL; the source is injectable."""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from http.client import HTTPException

from schemas.errors import CertificateUnavailableError, InvalidRecordError

CertificateFetch = Callable[[str], bytes]

FETCH_TIMEOUT_SECONDS = 5.0
# A signing certificate is ~2 KB of PEM; anything much larger is not one, and is not read whole.
MAX_CERTIFICATE_BYTES = 16 * 1024
# A failed fetch is not tried again for this long: about one invocation (the consumer's timeout is
# 60 s), well under the queue's visibility timeout, so that a redelivered record fetches again.
FAILURE_MEMORY_SECONDS = 60.0
# SNS signs with one key for a long time, so a few URLs cover every peer topic; a bound keeps a stream
# of distinct URLs from growing the cache without end.
CACHE_SIZE = 64


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # The URL policy names the only host trusted to serve a certificate: a redirect elsewhere is refused.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def fetch_over_https(
    url: str,
    *,
    context: ssl.SSLContext | None = None,
    timeout: float = FETCH_TIMEOUT_SECONDS,
    max_bytes: int = MAX_CERTIFICATE_BYTES,
) -> bytes:
    """GET `url` over HTTPS with the system's trust store (or `context`), no redirects, size-capped."""
    if not url.startswith("https://"):
        raise CertificateUnavailableError(f"signing certificate URL {url!r} is not https")
    opener = urllib.request.build_opener(
        _NoRedirects(), urllib.request.HTTPSHandler(context=context or ssl.create_default_context())
    )
    try:
        with opener.open(url, timeout=timeout) as response:  # https only, checked above
            body: bytes = response.read(max_bytes + 1)
    except urllib.error.HTTPError as error:
        if error.code < 500 and error.code != 429:
            # SNS serves its certificates without redirects or refusals: a URL on its host that it
            # does not serve names no key of SNS, so the message is forged, not unlucky.
            raise InvalidRecordError(
                f"signing certificate {url} does not exist (HTTP {error.code})", "bad-signature"
            ) from None
        raise CertificateUnavailableError(
            f"signing certificate {url} could not be fetched: {error}"
        ) from None
    except (urllib.error.URLError, HTTPException, OSError) as error:
        raise CertificateUnavailableError(
            f"signing certificate {url} could not be fetched: {error}"
        ) from None
    if len(body) > max_bytes:
        raise CertificateUnavailableError(
            f"signing certificate {url} is larger than {max_bytes} bytes; not a certificate"
        )
    return body


class CachedCertificates:
    """Certificates by URL, fetched once each; the least recently used one leaves first when full.

    A fetch that fails for want of an answer (CertificateUnavailableError) is remembered for
    `failure_seconds`: the other records of the batch fail at once with the same error instead of
    each waiting for its own timeout, and SQS retries them all after the visibility timeout (6
    minutes), when the URL is fetched again.
    """

    def __init__(
        self,
        fetch: CertificateFetch,
        size: int = CACHE_SIZE,
        *,
        failure_seconds: float = FAILURE_MEMORY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._size = size
        self._failure_seconds = failure_seconds
        self._clock = clock
        self._pems: OrderedDict[str, bytes] = OrderedDict()
        self._failures: dict[str, tuple[float, CertificateUnavailableError]] = {}

    def __call__(self, url: str) -> bytes:
        pem = self._pems.get(url)
        if pem is not None:
            self._pems.move_to_end(url)
            return pem
        self._raise_recent_failure(url)
        try:
            pem = self._fetch(url)
        except CertificateUnavailableError as error:
            self._failures[url] = (self._clock(), error)
            raise
        self._failures.pop(url, None)
        self._pems[url] = pem
        if len(self._pems) > self._size:
            self._pems.popitem(last=False)
        return pem

    def _raise_recent_failure(self, url: str) -> None:
        failed = self._failures.get(url)
        if failed is None:
            return
        at, error = failed
        if self._clock() - at >= self._failure_seconds:
            del self._failures[url]
            return
        raise CertificateUnavailableError(f"{error} (remembered for {self._failure_seconds:.0f} s)")


_installed: CachedCertificates | None = None


def certificate(url: str) -> bytes:
    """The PEM at `url` from the installed source (HTTPS by default), cached in this process."""
    global _installed
    if _installed is None:
        _installed = CachedCertificates(fetch_over_https)
    return _installed(url)


def install_certificate_source(fetch: CertificateFetch | None) -> None:
    """Replace where certificates come from (tests, the local runtime); None restores HTTPS.

    The cache goes with the old source: a certificate it fetched is not trusted under the new one.
    """
    global _installed
    _installed = None if fetch is None else CachedCertificates(fetch)
