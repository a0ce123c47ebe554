"""Attach target files: the model, its errors (with file:line), and the AttachStack's endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaoskit.errors import InputError, SafetyRefusal, TargetFileError
from chaoskit.stack.attach import AttachEndpoints, AttachStack
from chaoskit.stack.backend import StackBackend
from chaoskit.stack.endpoints import ProxyRef
from chaoskit.stack.factory import open_backend
from chaoskit.stack.target import AttachTarget, load_target, parse_target

REPO = Path(__file__).resolve().parents[3]

GOOD = """\
version: 1
kind: attach
name: staging
gateway:
  url: http://127.0.0.1:18610/
toxiproxy:
  - url: http://127.0.0.1:18674
    proxies: {inventory: inv-proxy, lbs: lbs}
  - url: http://localhost:18675
    proxies: {coupon: coupon}
services:
  orders: http://127.0.0.1:18614
allowed_hosts: [127.0.0.1, LocalHost]
caps: {max_users: 50, max_rate: 100, max_fault_duration: 1m}
headers:
  Authorization: "Bearer ${STAGING_TOKEN}"
  X-Team: blue
watchdog: {ttl: 3s}
"""


def parse(text: str) -> AttachTarget:
    target = parse_target(text, path="staging.yaml")
    assert isinstance(target, AttachTarget)
    return target


def error_of(text: str) -> TargetFileError:
    with pytest.raises(TargetFileError) as caught:
        parse_target(text, path="staging.yaml")
    return caught.value


def test_full_target_parses_with_defaults_filled_in() -> None:
    target = parse(GOOD)
    assert target.gateway.url == "http://127.0.0.1:18610"  # trailing slash dropped
    assert target.gateway.orders_path == "/orders"
    assert target.gateway.intent_format == "text"
    assert target.allowed_hosts == ["127.0.0.1", "localhost"]
    assert target.caps.max_fault_duration == 60.0
    assert target.watchdog.ttl == 3.0
    assert target.tag.header == "X-Chaoskit-Run" and target.tag.value == "chaoskit"
    assert target.env_vars() == ["STAGING_TOKEN"]
    assert target.proxy_refs() == {
        "inventory": ProxyRef("http://127.0.0.1:18674", "inv-proxy"),
        "lbs": ProxyRef("http://127.0.0.1:18674", "lbs"),
        "coupon": ProxyRef("http://localhost:18675", "coupon"),
    }


def test_minimal_target_has_safe_defaults() -> None:
    target = parse(
        "version: 1\nkind: attach\nname: s\ngateway: {url: 'https://stg.example'}\n"
        "toxiproxy: [{url: 'http://stg.example:8474', proxies: {store: store}}]\n"
        "allowed_hosts: [stg.example]\n"
    )
    assert target.services == {}
    assert target.caps.max_users is None and target.caps.max_rate is None
    assert target.watchdog.ttl == 30.0
    assert target.headers == {}


def test_example_file_documents_a_valid_target() -> None:
    target = load_target(REPO / "targets" / "staging.example.yaml")
    assert isinstance(target, AttachTarget)
    assert set(target.proxy_refs()) == {
        "inventory",
        "lbs",
        "eligibility",
        "orders",
        "store",
        "rider",
        "coupon",
    }
    assert target.env_vars() == ["STAGING_TOKEN"]
    # Every key of the model appears in the example, so the example documents all of them.
    text = (REPO / "targets" / "staging.example.yaml").read_text()
    for key in AttachTarget.model_fields:
        assert f"{key}:" in text, key


@pytest.mark.parametrize(
    ("change", "line", "expected"),
    [
        (("inventory: inv-proxy", "invntory: inv-proxy"), 8, "unknown dependency 'invntory'"),
        (("coupon: coupon}", "lbs: other}"), 10, "'lbs' already has a proxy on toxiproxy[0]"),
        (("orders: http", "ordrs: http"), 12, "unknown service 'ordrs'"),
        (("18614", "18614?x=1"), 12, "without ?query"),
        (("http://127.0.0.1:18610/", "ftp://127.0.0.1:18610"), 5, "expected an http(s) URL"),
        (("http://127.0.0.1:18610/", "${GATEWAY_URL}"), 5, "expanded in headers only"),
        (("[127.0.0.1, LocalHost]", "[127.0.0.1, 'http://x:1']"), 13, "allowed_hosts.1"),
        (("max_users: 50", "max_users: 0"), 14, "caps.max_users"),
        (("max_fault_duration: 1m", "max_fault_duration: soon"), 14, "expected a duration"),
        (("ttl: 3s", "ttl: 0s"), 18, "watchdog.ttl"),
        (("${STAGING_TOKEN}", "${staging-token}"), 16, "must name an environment variable"),
        (("X-Team: blue", "X Team: blue"), 17, "not a valid HTTP header name"),
        (("X-Team: blue", "X-Chaoskit-Run: blue"), 17, "the run tag's header"),
        (("  url: http://127.0.0.1:18610/\n", "  url: http://x:1\n  port: 3\n"), 6, "unknown key"),
    ],
)
def test_mistakes_point_at_their_line(change: tuple[str, str], line: int, expected: str) -> None:
    old, new = change
    assert old in GOOD
    error = error_of(GOOD.replace(old, new, 1))
    assert error.line == line, str(error)
    assert expected in str(error)
    assert str(error).startswith(f"staging.yaml:{line}:")


def test_required_keys_are_named() -> None:
    no_hosts = GOOD.replace("allowed_hosts: [127.0.0.1, LocalHost]\n", "")
    assert "allowed_hosts: required key is missing" in str(error_of(no_hosts))
    no_proxies = GOOD[: GOOD.index("toxiproxy:")] + GOOD[GOOD.index("services:") :]
    assert "toxiproxy: required key is missing" in str(error_of(no_proxies))
    empty = GOOD.replace("proxies: {coupon: coupon}", "proxies: {}")
    assert "toxiproxy.1.proxies" in str(error_of(empty))


def test_errors_never_echo_a_header_value() -> None:
    secret = "sk_live_0123456789abcdef"
    # Not a string (a number), not one line, a bad template next to the secret.
    for value in ("12345678901234", f'"{secret}\\nX: y"', f'"{secret} ${{bad name}}"'):
        text = GOOD.replace('"Bearer ${STAGING_TOKEN}"', value)
        error = error_of(text)
        assert "headers.Authorization" in str(error)
        assert secret not in str(error) and "12345678901234" not in str(error)


def test_credentials_in_a_url_are_refused_without_echo() -> None:
    error = error_of(GOOD.replace("http://127.0.0.1:18610/", "http://ops:hunter2@127.0.0.1:1"))
    assert "must not carry credentials" in str(error)
    assert "hunter2" not in str(error)


def test_backend_is_attach_stack_and_endpoints_keep_templates() -> None:
    target = parse(GOOD)
    backend = open_backend(target)
    assert isinstance(backend, AttachStack)
    assert isinstance(backend, StackBackend)
    endpoints = backend.endpoints()
    assert isinstance(endpoints, AttachEndpoints)
    assert endpoints.kind == "attach" and endpoints.name == "staging"
    assert endpoints.gateway_url == "http://127.0.0.1:18610"
    assert endpoints.toxiproxy_urls == ("http://127.0.0.1:18674", "http://localhost:18675")
    assert endpoints.proxies["inventory"] == ProxyRef("http://127.0.0.1:18674", "inv-proxy")
    assert endpoints.services == {"orders": "http://127.0.0.1:18614"}
    assert endpoints.headers == {
        "Authorization": "Bearer ${STAGING_TOKEN}",
        "X-Team": "blue",
        "X-Chaoskit-Run": "chaoskit",
    }
    assert endpoints.allowed_hosts == ("127.0.0.1", "localhost")
    assert endpoints.orders_path == "/orders" and endpoints.intent_format == "text"


def test_up_and_down_are_refused() -> None:
    backend = AttachStack(parse(GOOD))
    for action in (backend.up, backend.down):
        with pytest.raises(InputError, match="never starts or stops them"):
            action()


@pytest.mark.parametrize(
    ("old", "new", "role"),
    [
        ("http://127.0.0.1:18610/", "http://10.1.2.3:18610", "gateway"),
        ("http://localhost:18675", "http://toxi.internal:18675", "toxiproxy[1]"),
        ("http://127.0.0.1:18614", "http://orders.internal:1", "services.orders"),
    ],
)
def test_a_host_off_the_allow_list_is_refused_before_any_call(
    old: str, new: str, role: str
) -> None:
    target = parse(GOOD.replace(old, new))
    with pytest.raises(SafetyRefusal) as refused:
        AttachStack(target)
    assert str(refused.value).startswith(f"{role} host ")
    assert "not in allowed_hosts of target 'staging'" in str(refused.value)
