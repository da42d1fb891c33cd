"""The HTTP action end to end against a real server on 127.0.0.1.

Loopback is allowed only as 127.0.0.1/32; refusals are shown on 127.0.0.2 and on names
that resolve (in-process, through tests.helpers_http.LoopbackDNS) to loopback addresses
outside that allow-list. No test sends traffic off loopback (DESIGN.md §9).
"""

import socket
import time

import pytest

from failures.classifier import ORIGIN_STEP, classify
from failures.errors import ExternalHTTPError, RunDeadlineExceeded, StepConfigError, UserError
from tests.helpers_http import (
    LoopbackDNS,
    LoopbackHTTPServer,
    Reply,
    closed_port,
    make_tls_files,
    server_tls_context,
)
from workflows.actions.http import HttpRequestAction
from workflows.actions.registry import StepContext

CTX = StepContext(execution_id="run-123", step_id="fetch")


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    resolver = LoopbackDNS()
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
    yield resolver
    assert resolver.violations == [], "a test tried to resolve or reach a non-loopback destination"


@pytest.fixture(autouse=True)
def only_127_0_0_1_allowed(settings):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = ["127.0.0.1/32"]


@pytest.fixture
def server():
    with LoopbackHTTPServer() as running:
        yield running


def run(config, ctx=CTX):
    return HttpRequestAction().run(config, ctx)


def bucket(exc):
    return classify(exc, ORIGIN_STEP).error_type


def test_a_get_returns_the_status_selected_headers_and_the_decoded_json_body(server):
    server.route("/orders", Reply(200, {"items": [1, 2]}, headers={"ETag": '"v1"', "X-Internal": "no"}))
    output = run({"url": server.url("/orders")})
    assert output["status"] == 200
    assert output["body"] == {"items": [1, 2]}
    assert output["headers"]["etag"] == '"v1"'
    assert output["headers"]["content-type"] == "application/json"
    assert "x-internal" not in output["headers"]


def test_a_text_body_is_returned_as_text(server):
    server.route("/hello", Reply(200, "hello, world"))
    assert run({"url": server.url("/hello")})["body"] == "hello, world"


def test_a_post_sends_the_json_body_and_its_content_type(server):
    server.route("/orders", Reply(201, {"id": 7}))
    output = run({"method": "POST", "url": server.url("/orders"), "json": {"sku": "A-1", "qty": 2}})
    assert output == {"status": 201, "headers": output["headers"], "body": {"id": 7}}
    seen = server.requests[0]
    assert (seen.method, seen.headers["content-type"]) == ("POST", "application/json")
    assert seen.body == b'{"sku": "A-1", "qty": 2}'


def test_the_idempotency_key_is_the_run_id_and_step_id_and_cannot_be_overridden(server):
    server.route("/hook", Reply(204))
    run({"url": server.url("/hook"), "headers": {"idempotency-key": "mine", "X-Custom": "1"}})
    headers = server.requests[0].headers
    assert headers["idempotency-key"] == "run-123:fetch"
    assert headers["x-custom"] == "1"


def test_a_redirect_is_followed_and_its_target_checked_again(server, dns):
    server.route("/start", Reply(302, headers={"Location": "/final?x=1"}))
    server.route("/final", Reply(200, {"done": True}))
    dns.answer("service.test", "127.0.0.1")
    server.route("/hop", Reply(307, headers={"Location": server.url("/start", host="service.test")}))
    output = run({"url": server.url("/hop")})
    assert output["body"] == {"done": True}
    assert server.paths == ["/hop", "/start", "/final"]
    # Each hop on service.test (the absolute Location, then the relative one) was
    # resolved and checked on its own.
    assert dns.lookups.count("service.test") == 2
    assert server.requests[1].headers["host"] == f"service.test:{server.port}"


def test_a_redirect_to_a_name_with_a_refused_answer_is_refused_and_never_requested(server, dns):
    # One answer is the very server (allowed), the other is outside the allow-list: the
    # server proves the second hop never arrived, although it would have reached it.
    dns.answer("rebind.test", "127.0.0.1", "127.0.0.2")
    server.route("/start", Reply(302, headers={"Location": server.url("/internal", host="rebind.test")}))
    server.route("/internal", Reply(200, "should never be served"))
    with pytest.raises(StepConfigError, match="destination rebind.test resolves to a loopback address") as raised:
        run({"url": server.url("/start")})
    assert bucket(raised.value) == "user"
    assert server.paths == ["/start"]


def test_a_redirect_to_a_loopback_address_outside_the_allow_list_is_refused(server):
    server.route("/start", Reply(301, headers={"Location": f"http://127.0.0.2:{server.port}/admin"}))
    with pytest.raises(StepConfigError, match="destination 127.0.0.2 is a loopback address"):
        run({"url": server.url("/start")})
    assert server.paths == ["/start"]


def test_a_redirect_to_another_scheme_is_refused(server):
    server.route("/start", Reply(302, headers={"Location": "file:///etc/passwd"}))
    with pytest.raises(StepConfigError, match="must be an http"):
        run({"url": server.url("/start")})


def test_more_redirects_than_allowed_is_the_endpoints_failure(server, settings):
    settings.HTTP_ACTION_MAX_REDIRECTS = 2
    server.route("/loop", Reply(302, headers={"Location": "/loop"}))
    with pytest.raises(ExternalHTTPError, match="redirected more than 2 times"):
        run({"url": server.url("/loop")})
    assert server.paths == ["/loop"] * 3


def test_a_redirect_listed_in_expect_status_is_returned_instead_of_followed(server):
    server.route("/start", Reply(302, headers={"Location": "/final"}))
    output = run({"url": server.url("/start"), "expect_status": [302]})
    assert (output["status"], output["headers"]["location"]) == (302, "/final")
    assert server.paths == ["/start"]


def test_a_303_turns_a_post_into_a_get_without_its_body(server):
    server.route("/submit", Reply(303, headers={"Location": "/result"}))
    server.route("/result", Reply(200, "ok"))
    run({"method": "POST", "url": server.url("/submit"), "json": {"a": 1}})
    first, second = server.requests
    assert (first.method, first.body) == ("POST", b'{"a": 1}')
    assert (second.method, second.body) == ("GET", b"")
    assert "content-type" not in second.headers


def test_credentials_do_not_follow_a_redirect_to_another_origin(server, dns):
    dns.answer("other.test", "127.0.0.1")
    server.route("/start", Reply(302, headers={"Location": server.url("/next", host="other.test")}))
    server.route("/next", Reply(200, "ok"))
    run({"url": server.url("/start"), "headers": {"Authorization": "Bearer t0k3n", "X-Trace": "keep"}})
    first, second = server.requests
    assert first.headers["authorization"] == "Bearer t0k3n"
    assert "authorization" not in second.headers
    assert second.headers["x-trace"] == "keep"


def test_the_request_goes_only_to_the_address_that_was_checked(server, dns):
    # A rebinding name: the first answer is the allowed server, every later answer an
    # address outside the allow-list where nothing listens. A second lookup at connect
    # time would fail the request; the action never makes one.
    dns.answer_sequence("service.test", ["127.0.0.1"], ["127.0.0.2"])
    server.route("/data", Reply(200, {"ok": True}))
    output = run({"url": server.url("/data", host="service.test")})
    assert output["body"] == {"ok": True}
    assert dns.lookups.count("service.test") == 1
    assert server.requests[0].headers["host"] == f"service.test:{server.port}"


def test_loopback_is_refused_when_the_allow_list_leaves_it_out(server, settings):
    settings.HTTP_ACTION_ALLOWED_NETWORKS = []
    server.route("/", Reply(200, "secret internal page"))
    with pytest.raises(StepConfigError, match="destination localhost resolves to a loopback address"):
        run({"url": server.url("/", host="localhost")})
    with pytest.raises(StepConfigError, match="destination 127.0.0.1 is a loopback address"):
        run({"url": server.url("/")})
    assert server.requests == []


def test_127_0_0_2_is_refused_when_only_127_0_0_1_is_allowed():
    with pytest.raises(StepConfigError, match="127.0.0.2 is a loopback address"):
        run({"url": f"http://127.0.0.2:{closed_port()}/"})


def test_a_5xx_is_the_endpoints_failure_with_the_status_and_the_start_of_the_body(server):
    server.route("/boom", Reply(503, {"error": "maintenance"}))
    with pytest.raises(ExternalHTTPError) as raised:
        run({"url": server.url("/boom")})
    assert raised.value.message == f'GET {server.url("/boom")} answered 503: {{"error": "maintenance"}}'
    assert bucket(raised.value) == "external"


def test_a_4xx_is_the_workflows_own_error(server):
    server.route("/missing", Reply(404, "no such order"))
    with pytest.raises(UserError) as raised:
        run({"url": server.url("/missing")})
    assert "answered 404: no such order" in raised.value.message
    assert bucket(raised.value) == "user"


def test_a_4xx_listed_in_expect_status_is_a_success(server):
    server.route("/missing", Reply(404, {"found": False}))
    assert run({"url": server.url("/missing"), "expect_status": [200, 404]})["body"] == {"found": False}


def test_a_success_status_not_listed_in_expect_status_is_the_workflows_error(server):
    server.route("/created", Reply(200, "ok"))
    with pytest.raises(UserError, match=r"answered 200: ok \(expected 201\)"):
        run({"url": server.url("/created"), "expect_status": [201]})


def test_a_refused_connection_is_the_endpoints_failure():
    port = closed_port()
    with pytest.raises(ExternalHTTPError, match=f"could not connect to 127.0.0.1:{port}: Connection refused") as r:
        run({"url": f"http://127.0.0.1:{port}/"})
    assert bucket(r.value) == "external"


def test_an_endpoint_slower_than_the_timeout_is_the_endpoints_failure(server):
    server.route("/slow", Reply(200, "late", delay=2))
    started = time.monotonic()
    with pytest.raises(ExternalHTTPError, match="timed out waiting for GET"):
        run({"url": server.url("/slow"), "timeout": 0.3})
    assert time.monotonic() - started < 1.5


def test_an_endpoint_slower_than_the_runs_remaining_time_exceeds_the_deadline(server):
    server.route("/slow", Reply(200, "late", delay=2))
    ctx = StepContext(execution_id="run-1", step_id="fetch", deadline=time.monotonic() + 0.3)
    with pytest.raises(RunDeadlineExceeded) as raised:
        run({"url": server.url("/slow"), "timeout": 10}, ctx)
    assert classify(raised.value, ORIGIN_STEP).code == "E-0001"


def test_a_name_that_does_not_resolve_is_the_endpoints_failure(dns):
    dns.fail("gone.test")
    with pytest.raises(ExternalHTTPError, match="could not resolve host gone.test"):
        run({"url": "https://gone.test/"})


def test_a_body_larger_than_the_cap_is_refused(server, settings):
    settings.HTTP_ACTION_MAX_RESPONSE_BYTES = 1024
    server.route("/big", Reply(200, "x" * 5000))
    server.route("/small", Reply(200, "x" * 1000))
    with pytest.raises(UserError, match="larger than the 1024 bytes allowed"):
        run({"url": server.url("/big")})
    assert len(run({"url": server.url("/small")})["body"]) == 1000


def test_a_bad_url_after_rendering_is_a_step_config_error():
    with pytest.raises(StepConfigError, match="must be an http"):
        run({"url": "gopher://127.0.0.1/"})


def test_error_messages_leave_out_the_query_string(server):
    server.route("/boom", Reply(500, "down"))
    with pytest.raises(ExternalHTTPError) as raised:
        run({"url": server.url("/boom?api_key=abc123")})
    assert "abc123" not in raised.value.message
    assert server.requests[0].path == "/boom?api_key=abc123"


def test_a_head_request_returns_no_body(server):
    server.route("/ping", Reply(200, "ignored"))
    assert run({"method": "HEAD", "url": server.url("/ping")})["body"] == ""


class TestHTTPS:
    @pytest.fixture
    def tls_server(self, tmp_path, settings):
        ca, cert, key = make_tls_files(tmp_path, "api.test")
        settings.HTTP_ACTION_CA_BUNDLE = str(ca)
        with LoopbackHTTPServer(tls=server_tls_context(cert, key)) as running:
            yield running

    def test_https_connects_to_the_checked_address_and_verifies_the_certificate_for_the_name(self, tls_server, dns):
        dns.answer_sequence("api.test", ["127.0.0.1"], ["127.0.0.2"])
        tls_server.route("/v1", Reply(200, {"secure": True}))
        output = run({"url": tls_server.url("/v1", host="api.test")})
        assert output["body"] == {"secure": True}
        assert dns.lookups.count("api.test") == 1
        assert tls_server.requests[0].headers["host"] == f"api.test:{tls_server.port}"

    def test_a_certificate_for_another_name_is_refused(self, tls_server, dns):
        dns.answer("impostor.test", "127.0.0.1")
        tls_server.route("/v1", Reply(200, "should not be read"))
        with pytest.raises(ExternalHTTPError, match="TLS with impostor.test"):
            run({"url": tls_server.url("/v1", host="impostor.test")})
        assert tls_server.requests == []
