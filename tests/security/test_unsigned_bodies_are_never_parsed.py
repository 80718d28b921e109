"""A request is verified before its body is read as data: whatever an unsigned body
holds, the answer is 401, never a 500 with a traceback; a request that stalls is cut off."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from sandbox.slack_events import sign
from tests.support.stack import Stack

FORM = "application/x-www-form-urlencoded"

# Bodies that crashed parsers when they were parsed before the signature was checked.
MALFORMED = [
    pytest.param(FORM, b"payload=%7Bnot-json", id="interaction-payload-not-json"),
    pytest.param(FORM, b"payload=%5B1%2C2%5D", id="interaction-payload-a-list"),
    pytest.param("application/json", b'{"type": "event_callback", "event": ', id="truncated-json"),
    pytest.param("application/json", b"\xff\xfe\x00garbage", id="not-utf8"),
    pytest.param("text/plain", b"", id="empty"),
]


def _logged_tracebacks(stack: Stack) -> int:
    return stack.serve.log_text().count("Traceback")


@pytest.mark.parametrize(("content_type", "body"), MALFORMED)
def test_malformed_unsigned_body_gets_401_not_500(
    stack: Stack, content_type: str, body: bytes
) -> None:
    """Garbage with no signature, a wrong one, or a timestamp that is not a number is
    refused with 401, and the listener logs no traceback."""
    before = _logged_tracebacks(stack)
    now = str(int(time.time()))
    attempts = [
        {},
        {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": "not-a-number", "X-Slack-Signature": "v0=abc"},
    ]
    for headers in attempts:
        response = requests.post(
            stack.events_url,
            data=body,
            headers={"Content-Type": content_type, **headers},
            timeout=10,
        )
        assert response.status_code == 401, (headers, response.text)
    assert _logged_tracebacks(stack) == before
    assert requests.get(stack.events_url.replace("/slack/events", "/healthz"), timeout=5).ok


def test_a_signed_request_from_slack_still_gets_through(stack: Stack) -> None:
    """Slack's own URL check, signed with the app's secret, is answered as before."""
    body = '{"type": "url_verification", "token": "t", "challenge": "abc123"}'
    now = int(time.time())
    response = requests.post(
        stack.events_url,
        data=body.encode(),
        headers={
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": str(now),
            "X-Slack-Signature": sign(stack.slack.signing_secret, now, body),
        },
        timeout=10,
    )
    assert response.status_code == 200 and "abc123" in response.text


def test_a_request_whose_body_stalls_gets_408(strict_listener: tuple[str, int]) -> None:
    """Headers promise a body that never fully arrives: the listener answers 408 once its
    body timeout (1 s here) passes, instead of holding the connection for ever."""
    _, port = strict_listener
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"type": '
        )
        started = time.monotonic()
        answer = conn.recv(4096)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert waited < 5


def test_a_connection_that_never_finishes_its_headers_is_closed(
    strict_listener: tuple[str, int],
) -> None:
    """Half a request line and nothing more: the connection is closed after the idle
    timeout (2 s here), not kept open for ever."""
    _, port = strict_listener
    with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
        conn.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Le")
        started = time.monotonic()
        answer = conn.recv(4096)  # b"" when the server closes the connection
        waited = time.monotonic() - started
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:80]
    assert waited < 10
