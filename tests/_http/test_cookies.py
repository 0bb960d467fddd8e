"""FastHttpUser's cookie jar: RFC 6265's domain, path, expiry and Secure rules."""

from __future__ import annotations

import pytest

from notebookswarm._http.cookies import CookieJar

from fresh import python_output

NOW = 1_800_000_000.0  # a fixed "now" for every expiry


def jar_with(host: str, path: str, *headers: str) -> CookieJar:
    jar = CookieJar()
    jar.update_from(host, path, headers, now=NOW)
    return jar


def test_a_host_only_cookie_goes_back_to_that_host_alone() -> None:
    """No Domain: only the exact host that set it, not its subdomains or its parent."""
    jar = jar_with("example.com", "/", "sid=1")
    assert jar.header_for("example.com", "/", False, NOW) == "sid=1"
    assert jar.header_for("api.example.com", "/", False, NOW) == ""
    assert jar.header_for("other.test", "/", False, NOW) == ""


def test_a_domain_cookie_covers_the_domain_and_its_subdomains() -> None:
    """Domain=.example.com set by www.example.com goes to example.com and any subdomain."""
    jar = jar_with("www.example.com", "/", "sid=2; Domain=.example.com")
    for host in ("example.com", "api.example.com", "WWW.EXAMPLE.COM"):
        assert jar.header_for(host, "/", False, NOW) == "sid=2"
    assert jar.header_for("badexample.com", "/", False, NOW) == ""


def test_a_cookie_for_another_domain_is_refused() -> None:
    """A host may not set a cookie for a domain that does not cover it."""
    jar = jar_with("example.com", "/", "a=1; Domain=other.test", "b=2; Domain=sub.example.com")
    assert len(jar) == 0


def test_paths_limit_where_a_cookie_goes_and_longer_paths_come_first() -> None:
    """Path=/app matches /app and /app/x, not /application; the default path is the
    directory of the request; more specific paths are listed first."""
    jar = jar_with("h", "/app/login?next=/", "root=r; Path=/", "app=a; Path=/app", "dflt=d")
    assert jar.header_for("h", "/app/x", False, NOW) == "app=a; dflt=d; root=r"
    assert jar.header_for("h", "/app", False, NOW) == "app=a; dflt=d; root=r"
    assert jar.header_for("h", "/application", False, NOW) == "root=r"
    assert jar.header_for("h", "/", False, NOW) == "root=r"


def test_secure_cookies_go_only_over_https() -> None:
    jar = jar_with("h", "/", "s=1; Secure; HttpOnly", "p=2")
    assert jar.header_for("h", "/", True, NOW) == "s=1; p=2"
    assert jar.header_for("h", "/", False, NOW) == "p=2"


def test_expiry_by_max_age_or_expires_and_removal() -> None:
    """Max-Age wins over Expires; an expired cookie is not sent and is dropped; Max-Age=0
    or an Expires in the past removes a stored cookie at once."""
    jar = jar_with(
        "h",
        "/",
        "short=1; Max-Age=10; Expires=Fri, 01 Jan 2100 00:00:00 GMT",
        "dated=2; Expires=Fri, 01 Jan 2100 00:00:00 GMT",
        "session=3",
    )
    assert jar.header_for("h", "/", False, NOW + 5) == "short=1; dated=2; session=3"
    assert jar.header_for("h", "/", False, NOW + 11) == "dated=2; session=3"
    assert "short" not in jar
    jar.update_from("h", "/", ["dated=; Max-Age=0"], now=NOW)
    jar.update_from("h", "/", ["session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT"], now=NOW)
    assert len(jar) == 0


def test_same_name_under_two_paths_are_two_cookies_and_reading_by_name_works() -> None:
    jar = jar_with("h", "/", "n=root; Path=/", "n=deep; Path=/a")
    assert len(jar) == 2
    assert jar.header_for("h", "/a/b", False, NOW) == "n=deep; n=root"
    assert jar["n"] in ("root", "deep")
    assert list(jar) == ["n", "n"]
    with pytest.raises(KeyError):
        jar["missing"]
    jar.clear()
    assert jar.header_for("h", "/", False, NOW) == ""


def test_malformed_set_cookie_values_are_skipped() -> None:
    jar = jar_with("h", "/", "novalue", "=nameless", "ok=1; Expires=not a date")
    assert jar.header_for("h", "/", False, NOW) == "ok=1"


def test_ip_hosts_match_only_themselves() -> None:
    """An IP address never domain-matches by suffix: 1.127.0.0.1 is not under 127.0.0.1."""
    jar = jar_with("127.0.0.1", "/", "a=1; Domain=127.0.0.1")
    assert jar.header_for("127.0.0.1", "/", False, NOW) == "a=1"
    assert jar.header_for("1.127.0.0.1", "/", False, NOW) == ""


def test_importing_cookies_does_not_import_gevent() -> None:
    """Importing the cookie jar in a fresh interpreter leaves gevent unimported."""
    code = "import sys, notebookswarm._http.cookies; print('gevent' in sys.modules)"
    assert python_output(code) == "False"
