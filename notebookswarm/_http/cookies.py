"""The cookies one ``FastHttpUser`` holds: RFC 6265's storage and matching rules, small.

A cookie set without ``Domain`` goes back only to the host that set it; with
``Domain=example.com`` (set by that domain or a subdomain) to the domain and every
subdomain. ``Path`` limits it to paths under it (default: the directory of the request
that set it). ``Secure`` cookies go only over https. ``Max-Age`` (it wins) or
``Expires`` end a cookie; an expired or ``Max-Age=0`` one is removed. Left out: the
public-suffix list (a cookie for ``Domain=com`` is refused only because no host is
``com``), ``SameSite`` and ``HttpOnly`` (browser matters), and size limits.

Pure: no I/O, and every method that needs the time takes ``now`` (seconds since the
epoch, default ``time.time()``).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable, Iterator
from email.utils import parsedate_to_datetime


class _Cookie:
    __slots__ = ("domain", "expires", "host_only", "name", "path", "secure", "value")

    def __init__(
        self,
        name: str,
        value: str,
        domain: str,
        host_only: bool,
        path: str,
        secure: bool,
        expires: float | None,
    ) -> None:
        self.name = name
        self.value = value
        self.domain = domain
        self.host_only = host_only
        self.path = path
        self.secure = secure
        self.expires = expires

    def matches(self, host: str, path: str, secure: bool) -> bool:
        if self.secure and not secure:
            return False
        if self.host_only:
            if host != self.domain:
                return False
        elif not _domain_match(host, self.domain):
            return False
        return _path_match(path, self.path)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _domain_match(host: str, domain: str) -> bool:
    """RFC 6265 5.1.3: the host is the domain, or a name ending in ``.domain``; an IP
    address (on either side) matches only itself."""
    if host == domain:
        return True
    return host.endswith("." + domain) and not _is_ip(host) and not _is_ip(domain)


def _path_match(request_path: str, cookie_path: str) -> bool:
    """RFC 6265 5.1.4: the cookie's path is the request path or a directory above it."""
    if request_path == cookie_path:
        return True
    return request_path.startswith(cookie_path) and (
        cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"
    )


def _default_path(request_path: str) -> str:
    """RFC 6265 5.1.4: the request path up to, not including, its last ``/``."""
    if not request_path.startswith("/") or request_path.count("/") == 1:
        return "/"
    return request_path[: request_path.rindex("/")]


def _expiry(attributes: dict[str, str], now: float) -> float | None:
    """When the cookie ends (seconds since the epoch), None for a session cookie."""
    max_age = attributes.get("max-age")
    if max_age is not None and max_age.lstrip("-").isdecimal():
        return now + int(max_age)  # Max-Age wins over Expires
    expires = attributes.get("expires")
    if expires is None:
        return None
    try:
        return parsedate_to_datetime(expires).timestamp()
    except (TypeError, ValueError):
        return None  # an unparseable date is ignored, as browsers do


class CookieJar:
    """The cookies of one user, with ``requests``-like read access by name."""

    def __init__(self) -> None:
        self._cookies: dict[tuple[str, str, str], _Cookie] = {}

    # --- reading, by name -----------------------------------------------------------

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the value of a cookie called ``name`` (any domain or path), else ``default``."""
        for cookie in self._cookies.values():
            if cookie.name == name:
                return cookie.value
        return default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return any(cookie.name == name for cookie in self._cookies.values())

    def __iter__(self) -> Iterator[str]:
        for cookie in self._cookies.values():
            yield cookie.name

    def __len__(self) -> int:
        return len(self._cookies)

    def clear(self) -> None:
        """Forget every cookie."""
        self._cookies.clear()

    # --- writing ----------------------------------------------------------------------

    def set(self, name: str, value: str, host: str, path: str = "/") -> None:
        """Store a session cookie for exactly ``host`` (a host name such as ``127.0.0.1``)."""
        host = host.lower()
        self._cookies[(host, path, name)] = _Cookie(name, value, host, True, path, False, None)

    def update_from(
        self,
        host: str,
        request_path: str,
        set_cookie_values: Iterable[str],
        now: float | None = None,
    ) -> None:
        """Apply ``Set-Cookie`` header values from a response of ``host`` to ``request_path``.

        A cookie whose ``Domain`` does not cover ``host`` is ignored, as browsers do.
        """
        host = host.lower()
        now = time.time() if now is None else now
        for header in set_cookie_values:
            pair, *rest = header.split(";")
            name, sep, value = pair.partition("=")
            name = name.strip()
            if not sep or not name:
                continue
            attributes: dict[str, str] = {}
            for attribute in rest:
                attr_name, _, attr_value = attribute.partition("=")
                attributes[attr_name.strip().lower()] = attr_value.strip()
            domain = attributes.get("domain", "").lstrip(".").lower()
            if domain:
                if not _domain_match(host, domain):
                    continue  # another site's cookie
                host_only = False
            else:
                domain, host_only = host, True
            path = attributes.get("path", "")
            if not path.startswith("/"):
                path = _default_path(request_path.split("?", 1)[0])
            key = (domain, path, name)
            expires = _expiry(attributes, now)
            if expires is not None and expires <= now:
                self._cookies.pop(key, None)
                continue
            self._cookies[key] = _Cookie(
                name, value.strip(), domain, host_only, path, "secure" in attributes, expires
            )

    # --- sending ----------------------------------------------------------------------

    def header_for(
        self, host: str, request_path: str, secure: bool, now: float | None = None
    ) -> str:
        """The ``Cookie`` header value for a request, longer paths first; "" for none."""
        if not self._cookies:
            return ""
        host = host.lower()
        path = request_path.split("?", 1)[0] or "/"
        now = time.time() if now is None else now
        chosen: list[_Cookie] = []
        expired: list[tuple[str, str, str]] = []
        for key, cookie in self._cookies.items():
            if cookie.expires is not None and cookie.expires <= now:
                expired.append(key)
            elif cookie.matches(host, path, secure):
                chosen.append(cookie)
        for key in expired:
            del self._cookies[key]
        if len(chosen) > 1:
            chosen.sort(key=lambda cookie: -len(cookie.path))
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in chosen)
