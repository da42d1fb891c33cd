"""The HTTP action's address policy as pure functions: no test here opens a connection,
so private and link-local ranges can be named without any traffic reaching them."""

import ipaddress
import socket

import pytest

from failures.classifier import ORIGIN_STEP, classify
from failures.errors import ConfigurationFault, ExternalHTTPError, StepConfigError
from tests.helpers_http import LoopbackDNS
from workflows.actions.http import address_refusal, allowed_networks, checked_addresses, parse_target


@pytest.fixture
def dns(monkeypatch):
    resolver = LoopbackDNS()
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
    return resolver


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.1", "private"),
        ("10.255.255.53", "private"),
        ("172.16.5.4", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("127.0.0.1", "loopback"),
        ("127.0.0.2", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("192.0.2.10", "private"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:10.0.0.1", "private (IPv4 inside IPv6)"),
        ("::ffff:127.0.0.1", "loopback (IPv4 inside IPv6)"),
        ("64:ff9b::a9fe:a9fe", "link-local (IPv4 inside IPv6)"),
        # Deprecated and transition forms (RFC 3879, 7526, 4380, 2765, 8215).
        ("fec0::1", "site-local"),
        ("feff:ffff::1", "site-local"),
        ("2002:0a00:0001::", "private (IPv4 inside 6to4)"),
        ("2002:7f00:0001::1", "loopback (IPv4 inside 6to4)"),
        ("2002:a9fe:a9fe::", "link-local (IPv4 inside 6to4)"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private (IPv4 inside Teredo)"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback (IPv4 inside Teredo)"),
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "non-public (Teredo)"),
        ("::ffff:0:a00:1", "private (IPv4 inside IPv6)"),
        ("::ffff:0:7f00:1", "loopback (IPv4 inside IPv6)"),
        ("64:ff9b:1::a00:1", "private (IPv4 inside IPv6)"),
        ("::a00:1", "reserved"),  # IPv4-compatible, deprecated
        ("2001:db8::1", "private"),  # documentation
        ("100::1", "reserved"),  # discard-only
        ("2001:10::1", "private"),  # ORCHID
        ("198.18.0.1", "private"),  # benchmarking
        ("255.255.255.255", "reserved"),
    ],
)
def test_non_public_addresses_are_refused_with_their_kind(address, reason):
    assert address_refusal(address) == reason


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:0808:0808::1"],
)
def test_public_addresses_are_allowed(address):
    assert address_refusal(address) is None


def test_an_address_inside_an_allowed_network_is_let_through():
    networks = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32")]
    assert address_refusal("10.1.2.3", networks) is None
    assert address_refusal("127.0.0.1", networks) is None


def test_an_allowed_network_covers_only_itself():
    networks = [ipaddress.ip_network("127.0.0.1/32")]
    assert address_refusal("127.0.0.2", networks) == "loopback"
    assert address_refusal("192.168.1.1", networks) == "private"
    assert address_refusal("::1", networks) == "loopback"


def test_the_allow_list_is_read_from_settings(settings):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["127.0.0.1/32", "10.0.0.0/8"]
    assert allowed_networks() == [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")]


def test_a_malformed_allowed_network_is_the_platforms_configuration_fault(settings):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["not-a-cidr"]
    with pytest.raises(ConfigurationFault) as raised:
        allowed_networks()
    classification = classify(raised.value, ORIGIN_STEP)
    assert (classification.error_type, classification.code) == ("system", "C-0003")


def test_a_name_with_one_private_answer_among_public_ones_is_refused_without_naming_the_address(settings, dns):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = []
    dns.answer("mixed.test", "93.184.216.34", "10.0.0.5")
    with pytest.raises(StepConfigError) as raised:
        checked_addresses(parse_target("https://mixed.test/hook"))
    assert raised.value.message.startswith("destination mixed.test resolves to a private address")
    assert "10.0.0.5" not in raised.value.message
    assert dns.lookups == ["mixed.test"]


def test_a_name_whose_answers_are_all_public_is_accepted_with_every_answer(settings, dns):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = []
    dns.answer("public.test", "93.184.216.34", "2606:4700:4700::1111")
    assert checked_addresses(parse_target("https://public.test/")) == ["93.184.216.34", "2606:4700:4700::1111"]


def test_an_ip_literal_is_checked_without_a_lookup(settings, dns):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = []
    with pytest.raises(StepConfigError, match="destination 169.254.169.254 is a link-local address"):
        checked_addresses(parse_target("http://169.254.169.254/latest/meta-data/"))
    assert dns.lookups == []


def test_a_name_that_does_not_resolve_is_the_endpoints_failure(settings, dns):
    dns.fail("nowhere.test")
    with pytest.raises(ExternalHTTPError, match="could not resolve host nowhere.test"):
        checked_addresses(parse_target("https://nowhere.test/"))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/file", "must be an http(s) URL"),
        ("file:///etc/passwd", "must be an http(s) URL"),
        ("https://", "must name a host"),
        ("https://user:pw@example.com/", "credentials in the URL are not supported"),
        ("http://example.com:99999/", "not a valid URL"),
        ("", "must be an http(s) URL"),
    ],
)
def test_unusable_urls_are_step_config_errors(url, message):
    with pytest.raises(StepConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_target(url)


def test_a_parsed_url_keeps_the_query_for_the_request_but_not_for_messages():
    target = parse_target("HTTPS://Bücher.example:8443/a b?token=abc&x=1#frag")
    assert (target.scheme, target.host, target.port) == ("https", "xn--bcher-kva.example", 8443)
    assert target.request_target == "/a%20b?token=abc&x=1"
    assert target.display == "https://xn--bcher-kva.example:8443/a%20b"
    assert parse_target("http://[::1]/").netloc == "[::1]"
