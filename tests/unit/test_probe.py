"""TrafficProbe against a real local HTTP server that changes version mid-run."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from turnout.probe import ProbeResult, Sample, TrafficProbe


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    version = "1"
    fail = False

    def do_GET(self):
        status = 503 if Handler.fail else 200
        body = json.dumps({"version": Handler.version}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_counts_every_response_and_sees_the_switch():
    server = serve()
    Handler.version, Handler.fail = "1", False
    try:
        with TrafficProbe("127.0.0.1", server.server_address[1], workers=2) as probe:
            probe.wait_for(20)
            Handler.version = "2"
            probe.wait_for(probe.result.total + 20)
        result = probe.result
    finally:
        server.shutdown()
    assert result.failures == []
    assert set(result.versions) == {"1", "2"}
    assert result.total == sum(result.versions.values())


def test_failures_are_counted():
    server = serve()
    Handler.fail = True
    try:
        with TrafficProbe("127.0.0.1", server.server_address[1], workers=1) as probe:
            probe.wait_for(5)
    finally:
        Handler.fail = False
        server.shutdown()
    assert probe.result.failures and all(s.status == 503 for s in probe.result.failures)


def test_connection_refused_counts_as_failure_and_is_bounded():
    probe = TrafficProbe("127.0.0.1", 9, workers=1, max_requests=5, timeout_s=1)
    probe.start()
    probe.wait_for(5, timeout_s=10)
    result = probe.stop()
    assert result.total == 5 and len(result.failures) == 5


def test_first_all_new():
    samples = [Sample(1.0, 200, "1"), Sample(2.0, 200, "2"), Sample(3.0, 200, "1"),
               Sample(4.0, 200, "2"), Sample(5.0, 200, "2")]
    result = ProbeResult(samples)
    assert result.first_all_new("2", after=0.0) == 3.0
    assert result.first_all_new("3", after=0.0) is None


def test_a_connection_error_is_a_failure_that_says_what_the_client_saw():
    server = serve()
    port = server.server_address[1]
    server.shutdown()
    server.server_close()  # nothing listens on the port any more
    with TrafficProbe("127.0.0.1", port, workers=1, interval_s=0.01) as probe:
        probe.wait_for(3)
    failures = probe.result.failures
    assert failures and all(s.status == 0 for s in failures)
    assert all(s.error.startswith("ConnectionRefusedError") for s in failures), failures[0]
    assert "errors {'ConnectionRefusedError" in probe.result.summary()
