"""The SSRF address policy: which webhook URLs are refused, at registration and at every delivery.

Nothing here connects anywhere: resolution is answered from DNS below (guard_network), and a connection to any
address but 127.0.0.1 would raise before a packet left.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from functions.common.ssrf import (
    REFUSED_SERVICE_PORTS,
    AddressPolicy,
    UrlRefused,
    check_url,
    parse_allowed_networks,
    parse_allowed_ports,
    parse_allowed_ports_env,
    port_refusal,
    refusal,
)
from tests.functions.webhooks.support import guard_network

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:4700:4700::1111"
DNS = {
    "hooks.example.com": [PUBLIC_V4],
    "dual.example.com": [PUBLIC_V4, PUBLIC_V6],
    "localhost": ["127.0.0.1", "::1"],
    "metadata.google.internal": ["169.254.169.254"],
    "internal.example.com": ["10.0.0.5"],
    "mixed.example.com": [PUBLIC_V4, "10.0.0.5"],
    "mapped.example.com": ["::ffff:10.0.0.1"],
    "cgnat.example.com": ["100.100.100.200"],
    "imds-v6.example.com": ["fd00:ec2::254"],
}


@pytest.fixture(autouse=True)
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_network(monkeypatch, DNS)


REFUSED = [
    # scheme, credentials, syntax
    ("ftp://hooks.example.com/", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("gopher://hooks.example.com:70/", "only http and https"),
    ("//hooks.example.com/", "only http and https"),
    ("http://user:pass@hooks.example.com/", "credentials"),
    ("http://hooks.example.com\\@127.0.0.1/", "backslashes"),
    ("http://hooks.example.com/\tx", "control characters"),
    ("http://hooks.exämple.com/", "ASCII"),
    ("http://hooks.example.com/#top", "fragment"),
    ("http://hooks.example.com:0/", "port"),
    ("http://hooks.example.com:99999/", "port"),
    ("http://hooks_example.com/", "not a valid DNS name"),
    ("http:///nohost", "no host"),
    ("https://hooks.example.com/" + "a" * 2048, "1 to 2048 characters"),
    # loopback, private, link-local / metadata, CGNAT, multicast, reserved, unspecified, documentation
    ("http://127.0.0.1/", "loopback"),
    ("http://127.8.9.10:8080/", "loopback"),
    ("http://10.1.2.3/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "reserved"),
    ("http://198.18.0.1/", "reserved"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://192.0.2.10/", "documentation"),
    # other encodings of 127.0.0.1 and 169.254.169.254: integer, octal, hex, short forms
    ("http://2130706433/", "four decimal octets"),
    ("http://2852039166/", "four decimal octets"),
    ("http://0x7f000001/", "four decimal octets"),
    ("http://0x7f.0.0.1/", "four decimal octets"),
    ("http://0177.0.0.1/", "four decimal octets"),
    ("http://017700000001/", "four decimal octets"),
    ("http://127.1/", "four decimal octets"),
    ("http://127.000.000.001/", "four decimal octets"),
    ("http://0xa9.0xfe.0xa9.0xfe/", "four decimal octets"),
    ("http://hooks.example.123/", "four decimal octets"),
    # IPv6 forms
    ("http://[::1]/", "loopback"),
    ("http://[::]/", "unspecified"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://[::ffff:169.254.169.254]/", "link-local"),
    ("http://[::ffff:a9fe:a9fe]/", "link-local"),
    ("http://[::127.0.0.1]/", "IPv4-compatible"),
    ("http://[::ffff:0:7f00:1]/", "IPv4-translated"),
    ("http://[64:ff9b::a9fe:a9fe]/", "NAT64"),
    ("http://[64:ff9b:1::a00:1]/", "NAT64"),
    ("http://[2002:a9fe:a9fe::1]/", "6to4"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "zone identifiers"),
    ("http://[fd00:ec2::254]/", "private"),
    ("http://[fc00::1]/", "private"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[2001:db8::1]/", "documentation"),
    ("http://[zz::1]/", "malformed"),
    ("http://[127.0.0.1]/", "malformed"),
    # names resolving to refused addresses: every address of a name is checked
    ("http://localhost:8080/", "loopback"),
    ("http://metadata.google.internal/computeMetadata/v1/", "link-local"),
    ("https://internal.example.com/hook", "private"),
    ("https://mixed.example.com/hook", "private"),
    ("https://mapped.example.com/hook", "private"),
    ("https://cgnat.example.com/hook", "CGNAT"),
    ("https://imds-v6.example.com/hook", "private"),
    ("https://nxdomain.example.com/hook", "does not resolve"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_urls_that_could_reach_internal_networks_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UrlRefused, match=reason) as refused:
        check_url(url, AddressPolicy())
    assert url not in str(refused.value)  # refusals never echo the URL back


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.example.com/media?x=1", ("hooks.example.com", 443, "/media?x=1", [PUBLIC_V4])),
        ("HTTPS://Hooks.Example.COM./p", ("hooks.example.com", 443, "/p", [PUBLIC_V4])),
        ("http://hooks.example.com:8080", ("hooks.example.com", 8080, "/", [PUBLIC_V4])),
        ("https://dual.example.com/h", ("dual.example.com", 443, "/h", [PUBLIC_V4, PUBLIC_V6])),
        (f"http://{PUBLIC_V4}:8080/h", (PUBLIC_V4, 8080, "/h", [PUBLIC_V4])),
        (f"https://[{PUBLIC_V6}]/h", (PUBLIC_V6, 443, "/h", [PUBLIC_V6])),
    ],
)
def test_public_urls_are_allowed_with_exactly_the_addresses_checked(
    url: str, expected: tuple[str, int, str, list[str]], lookups: list[str]
) -> None:
    host, port, target, addresses = expected
    parsed, checked = check_url(url, AddressPolicy())
    assert (parsed.host, parsed.port, parsed.request_target) == (host, port, target)
    assert checked == tuple(ipaddress.ip_address(a) for a in addresses)
    assert lookups == ([] if parsed.literal else [host])  # literals are not looked up, names exactly once


def test_the_allow_list_admits_only_what_it_names() -> None:
    allowed = AddressPolicy(allowed=parse_allowed_networks(["127.0.0.1"]))
    assert check_url("http://127.0.0.1:8080/hook", allowed)[1] == (ipaddress.ip_address("127.0.0.1"),)
    assert check_url("http://[::ffff:127.0.0.1]:8080/hook", allowed)[0].port == 8080
    for url in ("http://127.0.0.2/", "http://10.0.0.1/", "http://[::1]/", "http://169.254.169.254/"):
        with pytest.raises(UrlRefused):
            check_url(url, allowed)
    wider = AddressPolicy(allowed=parse_allowed_networks(["127.0.0.0/8", "::1"]))
    assert check_url("http://localhost/", wider)[1] == tuple(map(ipaddress.ip_address, ["127.0.0.1", "::1"]))


@pytest.mark.parametrize("entry", ["localhost", "127.0.0.1/33", "10.0.0.1/8", "", "::1/200"])
def test_allow_list_entries_must_be_addresses_or_networks(entry: str) -> None:
    with pytest.raises(ValueError, match="IP addresses or networks"):
        parse_allowed_networks([entry])


def test_a_resolver_answering_garbage_is_a_refusal_not_a_crash() -> None:
    policy = AddressPolicy(resolver=lambda host, port: ["not-an-address"])
    with pytest.raises(UrlRefused, match="not an IP address"):
        check_url("https://hooks.example.com/", policy)
    with pytest.raises(UrlRefused, match="does not resolve"):
        check_url("https://hooks.example.com/", AddressPolicy(resolver=lambda host, port: []))


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("8.8.8.8", None),
        (PUBLIC_V6, None),
        ("::ffff:8.8.8.8", None),
        ("127.0.0.1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1%eth0", "a scoped (interface-local) address"),
        ("::ffff:192.168.0.1", "a private address"),
        ("192.0.0.170", "a reserved address"),
        ("2001:2::1", "a reserved address"),
    ],
)
def test_address_refusals_name_the_range(address: str, expected: str | None) -> None:
    assert refusal(ipaddress.ip_address(address)) == expected


# --- ports: a webhook is not a port scanner ---------------------------------------------------------------------------

SERVICE_PORT_URLS = [
    "http://8.8.8.8:22/",  # SSH
    "http://8.8.8.8:25/",  # SMTP
    "http://8.8.8.8:6379/",  # Redis
    "http://8.8.8.8:11211/",  # memcached
    "https://8.8.8.8:3306/",  # MySQL
    "http://8.8.8.8:2375/containers/create",  # the Docker API, which a POST drives
    "http://hooks.example.com:5432/",  # PostgreSQL behind a public name
    "http://hooks.example.com:1/",
    "http://hooks.example.com:1023/",
]


@pytest.mark.parametrize("url", SERVICE_PORT_URLS)
def test_ports_of_other_services_are_refused_before_any_lookup(url: str, lookups: list[str]) -> None:
    with pytest.raises(UrlRefused, match="port") as refused:
        check_url(url, AddressPolicy())
    assert url not in str(refused.value)
    assert lookups == []  # refused on its port alone: nothing resolved, nothing connected


@pytest.mark.parametrize("port", [80, 443, 1024, 3000, 5000, 8000, 8080, 8443, 9000, 32768, 49152, 65535])
def test_web_ports_and_unprivileged_ports_outside_the_service_list_are_allowed(port: int) -> None:
    url, addresses = check_url(f"http://hooks.example.com:{port}/hook", AddressPolicy())
    assert (url.port, addresses) == (port, (ipaddress.ip_address(PUBLIC_V4),))


def test_every_refused_service_port_is_unprivileged_and_below_the_ephemeral_ranges() -> None:
    # Receivers that bind a free port (the local cloud's, tests', tunnels') get one from the ephemeral range.
    assert REFUSED_SERVICE_PORTS
    assert all(1024 < port < 32768 for port in REFUSED_SERVICE_PORTS)
    assert all(service for service in REFUSED_SERVICE_PORTS.values())
    for port, service in REFUSED_SERVICE_PORTS.items():
        assert port_refusal(port) == f"the URL's port {port} belongs to a well-known service ({service})"


def test_a_configured_port_list_replaces_the_rule() -> None:
    only_tls = AddressPolicy(allowed_ports=parse_allowed_ports(["8443", "443"]))
    assert check_url("https://hooks.example.com/", only_tls)[0].port == 443
    assert check_url("https://hooks.example.com:8443/", only_tls)[0].port == 8443
    for url in ("http://hooks.example.com/", "http://hooks.example.com:8080/", "http://8.8.8.8:22/"):
        with pytest.raises(UrlRefused, match="the URL's port must be one of 443, 8443"):
            check_url(url, only_tls)
    # A stack may open a port the rule refuses, on purpose (its own list is all that applies then).
    assert check_url("http://hooks.example.com:9200/", AddressPolicy(allowed_ports=frozenset({9200})))[0].port == 9200


@pytest.mark.parametrize("entries", [["0"], ["65536"], ["http"], ["80", "-1"], ["8.5"], [True]])
def test_port_list_entries_must_be_port_numbers(entries: list[object]) -> None:
    with pytest.raises(ValueError, match="webhook ports are whole numbers from 1 to 65535"):
        parse_allowed_ports(entries)


def test_ports_from_the_environment() -> None:
    assert parse_allowed_ports_env("") == frozenset()
    assert parse_allowed_ports_env("443, 8443") == frozenset({443, 8443})
    with pytest.raises(ValueError):
        parse_allowed_ports_env("443,ssh")


def test_the_contract_lists_exactly_the_refused_service_ports() -> None:
    contracts = (Path(__file__).resolve().parents[3] / "docs" / "CONTRACTS.md").read_text()
    listed = re.search(r"except `REFUSED_SERVICE_PORTS` \(([\d,\s]+):", contracts)
    assert listed, "docs/CONTRACTS.md names no REFUSED_SERVICE_PORTS list"
    assert [int(port) for port in listed.group(1).replace("\n", " ").split(",")] == sorted(REFUSED_SERVICE_PORTS)
