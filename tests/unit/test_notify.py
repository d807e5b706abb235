"""Unit tests for turnout.notify: payload shape, and send() against a real local receiver."""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from turnout import notify
from turnout.errors import InputError

SECRET_PATH = "/services/T000/B000/very-secret-token"


class Receiver:
    """A webhook receiver on 127.0.0.1 that records every POST and answers ``status``."""

    def __init__(self) -> None:
        self.requests: queue.Queue[dict[str, Any]] = queue.Queue()
        self.status = 200
        self.location: str | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.requests.put({
                    "method": self.command,
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "body": self.rfile.read(length),
                })
                redirect = receiver.location and self.path == SECRET_PATH
                self.send_response(302 if redirect else receiver.status)
                if redirect:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_POST = do_GET = _record  # http.server's handler names

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{SECRET_PATH}"

    def next_request(self, deadline_s: float = 5.0) -> dict[str, Any]:
        """The next recorded request, polling until a deadline."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            try:
                return self.requests.get(timeout=0.05)
            except queue.Empty:
                continue
        raise AssertionError(f"the receiver got no request within {deadline_s}s")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback traffic must not go to a proxy configured in the environment."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    recv = Receiver()
    recv.thread.start()
    try:
        yield recv
    finally:
        recv.server.shutdown()
        recv.server.server_close()
        recv.thread.join(timeout=5)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------- payload


@pytest.mark.parametrize("event", notify.EVENTS)
def test_payload_shape(event: str) -> None:
    payload = notify.build_payload(event, "prod", "1.4.2", "alice@ws1", 12.5,
                                   "https://ci.example.test/job/7/report.html", "success",
                                   "deployed 1.4.2 to green")
    json.dumps(payload)  # serialisable as is
    assert set(payload) == {"text", "attachments"}
    assert isinstance(payload["text"], str) and "prod" in payload["text"]
    assert "1.4.2" in payload["text"]
    (attachment,) = payload["attachments"]
    assert attachment["fallback"] == payload["text"]
    assert attachment["color"].startswith("#")
    assert attachment["text"] == "deployed 1.4.2 to green"
    fields = {field["title"]: field["value"] for field in attachment["fields"]}
    assert fields["Environment"] == "prod" and fields["Version"] == "1.4.2"
    assert fields["By"] == "alice@ws1" and fields["Duration"] == "12.5 s"
    assert fields["Report"] == "<https://ci.example.test/job/7/report.html|open report>"
    assert all(isinstance(field["short"], bool) for field in attachment["fields"])


def test_payload_differs_per_event() -> None:
    texts = {event: notify.build_payload(event, "prod", "1.4.2", "bob", None, None, None, None)
             for event in notify.EVENTS}
    assert len({payload["text"] for payload in texts.values()}) == len(notify.EVENTS)
    assert len({p["attachments"][0]["color"] for p in texts.values()}) == len(notify.EVENTS)
    assert "failed" in texts["failure"]["text"]
    assert "rolled back" in texts["rollback"]["text"]
    fields = {f["title"]: f["value"] for f in texts["start"]["attachments"][0]["fields"]}
    assert fields["Duration"] == "-" and "Report" not in fields
    assert "text" not in texts["start"]["attachments"][0]


def test_payload_escapes_slack_control_characters() -> None:
    payload = notify.build_payload("failure", "prod", "1.4.2", "<@U123>", 125, "not a url",
                                   "failed", "smoke failed: <script> & <!channel>")
    assert "<@U123>" not in json.dumps(payload) and "&lt;@U123&gt;" in payload["text"]
    attachment = payload["attachments"][0]
    assert attachment["text"] == "smoke failed: &lt;script&gt; &amp; &lt;!channel&gt;"
    fields = {field["title"]: field["value"] for field in attachment["fields"]}
    assert fields["Report"] == "not a url" and fields["Duration"] == "2 min 5 s"


def test_unknown_event_is_refused() -> None:
    with pytest.raises(InputError, match="unknown notification event 'deployed'"):
        notify.build_payload("deployed", "prod", "1", "a", None, None, None, None)


# ---------------------------------------------------------------------------------- send


def test_send_delivers_json_to_a_local_receiver(receiver: Receiver) -> None:
    payload = notify.build_payload("success", "lab", "1.0.0", "ci", 3.0, None, "success",
                                   "ünïcode ok")
    assert notify.send(receiver.url, payload) is True
    request = receiver.next_request()
    assert (request["method"], request["path"]) == ("POST", SECRET_PATH)
    assert request["content_type"].startswith("application/json")
    assert json.loads(request["body"].decode("utf-8")) == payload


def test_send_returns_false_on_http_500(receiver: Receiver,
                                        caplog: pytest.LogCaptureFixture) -> None:
    receiver.status = 500
    with caplog.at_level(logging.WARNING, logger="turnout.notify"):
        assert notify.send(receiver.url, {"text": "x"}) is False
    receiver.next_request()  # it was delivered, and refused
    (record,) = caplog.records
    assert "HTTP 500" in record.getMessage()
    assert "very-secret-token" not in record.getMessage()  # webhook paths are secrets


def test_send_does_not_follow_redirects(receiver: Receiver) -> None:
    receiver.location = receiver.url.replace(SECRET_PATH, "/elsewhere")
    assert notify.send(receiver.url, {"text": "x"}) is False
    first = receiver.next_request()
    assert (first["method"], first["path"]) == ("POST", SECRET_PATH)
    # send() is synchronous and the handler records before answering: a followed redirect
    # would already be in the queue
    assert receiver.requests.empty(), "the redirect was followed"


def test_send_to_a_closed_port_fails_fast(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/hook"
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="turnout.notify"):
        assert notify.send(url, {"text": "x"}, timeout=2.0) is False
    assert time.monotonic() - started < 2.0
    assert len(caplog.records) == 1
    assert "not delivered" in caplog.records[0].getMessage()


def test_send_times_out_on_a_silent_server() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        started = time.monotonic()
        assert notify.send(url, {"text": "x"}, timeout=0.3) is False
        assert time.monotonic() - started < 3.0


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://127.0.0.1/x", "javascript:alert(1)", "", "127.0.0.1:80/x",
    "http://", None,
])
def test_send_rejects_non_http_urls(url: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="turnout.notify"):
        assert notify.send(url, {"text": "x"}) is False
    assert len(caplog.records) == 1


def test_send_never_raises_on_a_bad_payload(receiver: Receiver) -> None:
    assert notify.send(receiver.url, {"text": object()}) is False
    assert notify.send(receiver.url, {"text": "x"}, timeout=0) is False
    assert receiver.requests.empty()


# --------------------------------------------------------------------------- configuration


def test_webhook_url_is_off_by_default() -> None:
    assert notify.webhook_url({}, {}) is None
    assert notify.webhook_url(None, None) is None
    assert notify.webhook_url({"TURNOUT_WEBHOOK_URL": "  "}, {"turnout_webhook_url": ""}) is None


def test_webhook_url_environment_overrides_inventory() -> None:
    inventory = {"turnout_webhook_url": "https://hooks.example.test/inventory"}
    assert notify.webhook_url({}, inventory) == "https://hooks.example.test/inventory"
    environ = {"TURNOUT_WEBHOOK_URL": " https://hooks.example.test/env \n"}
    assert notify.webhook_url(environ, inventory) == "https://hooks.example.test/env"
    assert notify.webhook_url({"TURNOUT_WEBHOOK_URL": ""}, inventory) == (
        "https://hooks.example.test/inventory")
    assert notify.webhook_url({}, {"turnout_webhook_url": 42}) is None


def test_notify_is_a_no_op_without_url(receiver: Receiver) -> None:
    assert notify.notify(None, "start", "lab", "1.0.0", "ci") is False
    assert notify.notify(receiver.url, "nope", "lab", "1.0.0", "ci") is False
    assert receiver.requests.empty()
    assert notify.notify(receiver.url, "rollback", "lab", "1.0.0", "ci", duration_s=4.0,
                         result="success") is True
    body = json.loads(receiver.next_request()["body"])
    assert "rolled back" in body["text"]
