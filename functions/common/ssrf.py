"""Which webhook URLs may be called: the address and port policy that keeps deliveries off internal networks (SSRF)
and off other services' ports.

Only http and https URLs with a DNS name or a canonical IP literal are accepted. The port is checked first, before any
lookup: 80, 443 and 1024-65535 except the well-known service ports in REFUSED_SERVICE_PORTS, or exactly the stack's
own list when it sets one; otherwise a webhook is a port scanner (register `http://<any public host>:22/`, read the
delivery log, learn whether SSH listens there). A name is resolved and *every* address it resolves to is checked;
the caller then connects to one of exactly those addresses (functions/webhooks/adapters.py), so a second lookup an
attacker could rebind never happens. Refused: loopback,
private, link-local (169.254.169.254 and fd00:ec2::254, the instance metadata service, included), CGNAT, multicast,
reserved, documentation, unspecified, and the IPv6 forms that carry or translate an IPv4 address (IPv4-mapped,
-compatible, NAT64, 6to4, Teredo). Integer, octal, hex and short forms of IPv4 hosts are refused outright rather
than decoded. An explicit allow-list (stack config, empty by default, set by the local cloud for its 127.0.0.1
receivers) admits addresses the policy would otherwise refuse.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Iterable[str]]
"""Host name and port to the addresses it resolves to (strings, as getaddrinfo gives them)."""

MAX_URL_LENGTH = 2048
SCHEMES = {"http": 80, "https": 443}
FIRST_UNPRIVILEGED_PORT = 1024
# Ports in 1024-65535 where a well-known service listens that is no webhook receiver: databases, caches, brokers,
# remote administration, container and cluster control planes. Some speak HTTP and act on a POST (Docker, kubelet,
# Consul, Elasticsearch, CouchDB, InfluxDB, WinRM); the others answer in their own protocol, which is all a prober
# needs to learn that they are there. All are below 32768: the ephemeral ranges (Linux 32768-60999, BSD, macOS and
# Windows 49152-65535) are where receivers that bind a free port (the local cloud's, tests', tunnels') end up, so
# services that live there (e.g. HDFS on 50070) are not listed.
REFUSED_SERVICE_PORTS: Mapping[int, str] = {
    1080: "SOCKS proxy",
    1433: "SQL Server",
    1521: "Oracle Database",
    1883: "MQTT",
    2049: "NFS",
    2375: "Docker API",
    2376: "Docker API over TLS",
    2379: "etcd",
    2380: "etcd peers",
    3306: "MySQL",
    3389: "Remote Desktop",
    4369: "Erlang port mapper",
    5432: "PostgreSQL",
    5672: "AMQP",
    5900: "VNC",
    5984: "CouchDB",
    5985: "WinRM",
    5986: "WinRM over TLS",
    6379: "Redis",
    6443: "Kubernetes API",
    8086: "InfluxDB",
    8500: "Consul",
    9042: "Cassandra",
    9092: "Kafka",
    9200: "Elasticsearch",
    9300: "Elasticsearch transport",
    10250: "kubelet",
    11211: "memcached",
    27017: "MongoDB",
    27018: "MongoDB shards",
}

_v4, _v6 = ipaddress.IPv4Network, ipaddress.IPv6Network
# Every range a webhook may never reach, with the reason a client is told.
REFUSED_NETWORKS: tuple[tuple[IPNetwork, str], ...] = (
    (_v4("0.0.0.0/8"), "an unspecified address"),
    (_v4("10.0.0.0/8"), "a private address"),
    (_v4("100.64.0.0/10"), "a shared (CGNAT) address"),
    (_v4("127.0.0.0/8"), "a loopback address"),
    (_v4("169.254.0.0/16"), "a link-local address"),
    (_v4("172.16.0.0/12"), "a private address"),
    (_v4("192.0.0.0/24"), "a reserved address"),
    (_v4("192.0.2.0/24"), "a documentation address"),
    (_v4("192.88.99.0/24"), "a reserved address"),
    (_v4("192.168.0.0/16"), "a private address"),
    (_v4("198.18.0.0/15"), "a reserved address"),
    (_v4("198.51.100.0/24"), "a documentation address"),
    (_v4("203.0.113.0/24"), "a documentation address"),
    (_v4("224.0.0.0/4"), "a multicast address"),
    (_v4("240.0.0.0/4"), "a reserved address"),
    (_v6("::/128"), "an unspecified address"),
    (_v6("::1/128"), "a loopback address"),
    (_v6("::/96"), "an IPv4-compatible address"),
    (_v6("::ffff:0:0:0/96"), "an IPv4-translated address"),
    (_v6("64:ff9b::/96"), "a NAT64 address"),
    (_v6("64:ff9b:1::/48"), "a NAT64 address"),
    (_v6("100::/64"), "a reserved address"),
    (_v6("2001::/32"), "a Teredo address"),
    (_v6("2001:db8::/32"), "a documentation address"),
    (_v6("2001::/23"), "a reserved address"),
    (_v6("2002::/16"), "a 6to4 address"),
    (_v6("fc00::/7"), "a private address"),
    (_v6("fe80::/10"), "a link-local address"),
    (_v6("fec0::/10"), "a site-local address"),
    (_v6("ff00::/8"), "a multicast address"),
)

_DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


class UrlRefused(ValueError):
    """A webhook URL the policy does not allow; the message says why without repeating the URL."""


class UrlUnresolvable(UrlRefused):
    """The URL's host name does not resolve (now): nothing to connect to, rather than somewhere not allowed."""


@dataclass(frozen=True)
class WebhookUrl:
    """A URL that passed the syntax checks: where to connect, what to ask for, what to call the host."""

    scheme: str
    """`http` or `https`."""
    host: str
    """Lower-case DNS name, or an IP literal without brackets; the Host header and TLS server name."""
    port: int
    """Explicit port, or the scheme's default."""
    request_target: str
    """Path and query sent in the request line (`/` when the URL has no path)."""
    literal: IPAddress | None
    """The address itself when the host is an IP literal (nothing to resolve)."""


@dataclass(frozen=True)
class AddressPolicy:
    """The resolver, the address allow-list and the port list one check uses."""

    allowed: tuple[IPNetwork, ...] = ()
    """Networks admitted even though they fall in a refused range (local development only)."""
    resolver: Resolver | None = None
    """Name resolution; None means the system resolver (getaddrinfo)."""
    allowed_ports: frozenset[int] = frozenset()
    """The only ports URLs may use; empty means the rule (80, 443, 1024-65535 but REFUSED_SERVICE_PORTS)."""


def parse_allowed_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """The allow-list from config: IP addresses or CIDR networks, e.g. `127.0.0.1` or `127.0.0.0/8`."""
    networks: list[IPNetwork] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=True))
        except ValueError as err:
            raise ValueError(f"webhook allow-list entries are IP addresses or networks, got {entry!r}") from err
    return tuple(networks)


def parse_allowed_addresses(raw: str) -> tuple[IPNetwork, ...]:
    """The allow-list from a function's environment (`WEBHOOK_ALLOWED_ADDRESSES`): a comma list, empty for none."""
    return parse_allowed_networks(item for item in raw.split(",") if item.strip())


def parse_allowed_ports(entries: Iterable[object]) -> frozenset[int]:
    """The port list from config (`webhookAllowedPorts`): whole numbers from 1 to 65535; empty for the rule."""
    ports: set[int] = set()
    for entry in entries:
        text = str(entry).strip()
        if isinstance(entry, bool) or not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
            raise ValueError(f"webhook ports are whole numbers from 1 to 65535, got {entry!r}")
        ports.add(int(text))
    return frozenset(ports)


def parse_allowed_ports_env(raw: str) -> frozenset[int]:
    """The port list from a function's environment (`WEBHOOK_ALLOWED_PORTS`): a comma list, empty for the rule."""
    return parse_allowed_ports(item for item in raw.split(",") if item.strip())


def allowed_ports_to_env(ports: Iterable[int]) -> str:
    """`WEBHOOK_ALLOWED_PORTS` for a port list: a sorted comma list (empty for the rule)."""
    return ",".join(str(port) for port in sorted(set(ports)))


def port_refusal(port: int, allowed_ports: frozenset[int] = frozenset()) -> str | None:
    """Why a webhook may not use `port`, or None when it may."""
    if allowed_ports:
        if port in allowed_ports:
            return None
        listed = ", ".join(str(p) for p in sorted(allowed_ports))
        return f"the URL's port must be {'one of ' if len(allowed_ports) > 1 else ''}{listed}"
    if port in SCHEMES.values():
        return None
    if port < FIRST_UNPRIVILEGED_PORT:
        return f"the URL's port {port} is not one webhooks may use (80, 443 or 1024-65535)"
    if port in REFUSED_SERVICE_PORTS:
        return f"the URL's port {port} belongs to a well-known service ({REFUSED_SERVICE_PORTS[port]})"
    return None


def parse_webhook_url(raw: str) -> WebhookUrl:
    """Syntax checks: scheme, no credentials, a DNS name or canonical IP literal, a valid port."""
    if not raw or len(raw) > MAX_URL_LENGTH:
        raise UrlRefused(f"the URL must be 1 to {MAX_URL_LENGTH} characters")
    if not raw.isascii() or any(ch <= " " or ch in "\x7f\\" for ch in raw):
        raise UrlRefused("the URL must be ASCII without spaces, control characters or backslashes (punycode hosts)")
    try:
        parts = urlsplit(raw)
    except ValueError as err:  # e.g. a bracketed host that is not an IPv6 address
        raise UrlRefused("the URL is malformed") from err
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UrlRefused("only http and https URLs are allowed")
    if "@" in parts.netloc:
        raise UrlRefused("credentials in the URL are not allowed")
    if parts.fragment:
        raise UrlRefused("a webhook URL has no fragment")
    try:
        port = SCHEMES[scheme] if parts.port is None else parts.port
    except ValueError as err:
        raise UrlRefused("the URL's port is not a number from 1 to 65535") from err
    if not 1 <= port <= 65535:
        raise UrlRefused("the URL's port is not a number from 1 to 65535")
    host, literal = _parse_host(parts.netloc, parts.hostname)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WebhookUrl(scheme=scheme, host=host, port=port, request_target=target, literal=literal)


def _parse_host(netloc: str, hostname: str | None) -> tuple[str, IPAddress | None]:
    if not hostname:
        raise UrlRefused("the URL has no host")
    if netloc.startswith("["):  # an IPv6 literal; zone IDs name a local interface and are refused
        if "%" in hostname:
            raise UrlRefused("IPv6 zone identifiers are not allowed")
        try:
            return hostname, ipaddress.IPv6Address(hostname)
        except ValueError as err:
            raise UrlRefused("the URL's IPv6 host is malformed") from err
    name = hostname.lower().removesuffix(".")
    if _DOTTED_QUAD.fullmatch(name):
        return name, ipaddress.IPv4Address(name)
    labels = name.split(".")
    if all(_NUMERIC_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        # 2130706433, 0177.0.0.1, 0x7f.1, 127.1: resolvers decode these to addresses; refuse rather than guess.
        raise UrlRefused("numeric hosts must be written as four decimal octets")
    if len(name) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise UrlRefused("the URL's host is not a valid DNS name")
    return name, None


def refusal(address: IPAddress, allowed: tuple[IPNetwork, ...] = ()) -> str | None:
    """Why a webhook may not connect to `address`, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "a scoped (interface-local) address"
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
            address = address.ipv4_mapped
    if any(address in network for network in allowed if network.version == address.version):
        return None
    for network, reason in REFUSED_NETWORKS:
        if network.version == address.version and address in network:
            return reason
    if address.is_multicast or address.is_reserved or address.is_link_local or address.is_loopback:
        return "a reserved address"
    if not address.is_global:
        return "an address that is not publicly routable"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every TCP address the system resolver returns for `host`."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def checked_addresses(url: WebhookUrl, policy: AddressPolicy) -> tuple[IPAddress, ...]:
    """The addresses to connect to, every one allowed; UrlRefused if the name fails to resolve or any is refused."""
    if url.literal is not None:
        candidates: list[IPAddress] = [url.literal]
    else:
        resolver = policy.resolver or system_resolver
        try:
            candidates = [ipaddress.ip_address(raw) for raw in resolver(url.host, url.port)]
        except (OSError, UnicodeError) as err:  # socket.gaierror is an OSError
            raise UrlUnresolvable("the URL's host does not resolve") from err
        except ValueError as err:
            raise UrlRefused("the URL's host resolves to something that is not an IP address") from err
    if not candidates:
        raise UrlUnresolvable("the URL's host does not resolve")
    for address in candidates:
        reason = refusal(address, policy.allowed)
        if reason:
            # One refused address refuses the name: otherwise a name with a public and a private record could
            # be steered to the private one.
            raise UrlRefused(f"the URL's host resolves to {reason}")
    return tuple(dict.fromkeys(candidates))


def check_url(raw: str, policy: AddressPolicy) -> tuple[WebhookUrl, tuple[IPAddress, ...]]:
    """Syntax, port and address checks together: what registration runs, and what every delivery runs again.

    The port is checked before the host is resolved, so a refused port costs no lookup and sends nothing anywhere.
    """
    url = parse_webhook_url(raw)
    reason = port_refusal(url.port, policy.allowed_ports)
    if reason:
        raise UrlRefused(reason)
    return url, checked_addresses(url, policy)
