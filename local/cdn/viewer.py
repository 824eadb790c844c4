"""A viewer's request as the local CDN receives it: the raw path and query (signatures cover them as sent), headers,
cookies and the viewer's address; and the Set-Cookie lines a response sends back."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote


@dataclass(frozen=True)
class ViewerRequest:
    method: str
    scheme: str
    host: str
    """The Host header as sent (`127.0.0.1:8443`): a signed URL's Resource names it."""
    path: str
    """The path exactly as sent, still percent-encoded."""
    query: str = ""
    """The raw query string, without `?`."""
    headers: tuple[tuple[str, str], ...] = ()
    ip: str = "127.0.0.1"
    cookies: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cookies", parse_cookies(self.header_values("cookie")))

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def query_pairs(self) -> list[tuple[str, str]]:
        """`name=value` pairs of the query in order, names decoded, values raw (`a` alone reads as `("a", "")`)."""
        return parse_query(self.query)


def parse_query(query: str) -> list[tuple[str, str]]:
    pairs = []
    for segment in query.split("&") if query else []:
        name, _, value = segment.partition("=")
        pairs.append((unquote(name.replace("+", " ")), value))
    return pairs


def parse_cookies(lines: list[str]) -> dict[str, str]:
    """Cookie header values; the first of two cookies with one name wins (browsers send the most specific path
    first)."""
    cookies: dict[str, str] = {}
    for line in lines:
        for pair in line.split(";"):
            name, sep, value = pair.strip().partition("=")
            if sep and name and name not in cookies:
                cookies[name] = value.strip().strip('"')
    return cookies


def set_cookie_line(name: str, value: str, attributes: str = "") -> str:
    return f"{name}={value}" + (f"; {attributes.strip().lstrip(';').strip()}" if attributes.strip() else "")
