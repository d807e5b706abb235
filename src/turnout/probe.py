"""A concurrent HTTP client that counts every response through the load balancer.

Used by the end-to-end tests (zero failed requests across a flip) and the benchmarks (flip
latency: time until every response carries the new version). Bounded: it stops at its
deadline or request budget, whichever comes first, and only targets the address it is given.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Sample:
    at: float  # time.monotonic() when the response completed
    status: int  # HTTP status, or 0 for a connection error / timeout
    version: str | None
    error: str = ""  # for status 0: what the client saw (e.g. "TimeoutError: timed out")


@dataclass
class ProbeResult:
    samples: list[Sample] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.samples)

    @property
    def failures(self) -> list[Sample]:
        return [s for s in self.samples if s.status != 200]

    @property
    def versions(self) -> Counter[str | None]:
        return Counter(s.version for s in self.samples if s.status == 200)

    def first_all_new(self, version: str, after: float) -> float | None:
        """Time (monotonic) from which every response after `after` reports `version`."""
        last_other = after
        seen = False
        for sample in self.samples:
            if sample.at < after:
                continue
            if sample.status == 200 and sample.version == version:
                seen = True
            else:
                last_other = sample.at
                seen = False
        return last_other if seen else None

    def summary(self) -> str:
        codes = Counter(s.status for s in self.samples)
        errors = Counter(s.error for s in self.samples if s.error)
        said = f", errors {dict(errors)}" if errors else ""
        return (f"{self.total} requests, status {dict(codes)}, versions {dict(self.versions)}"
                f"{said}")


class TrafficProbe:
    """Background workers sending GET /version through the LB until stopped or bounded.

    The version of a response is the JSON ``version`` of /version, or with
    ``version_header`` that response header (``X-Turnout-Release``: the release the load
    balancer routed to, for any app)."""

    def __init__(self, host: str, port: int = 80, workers: int = 4, path: str = "/version",
                 max_seconds: float = 600.0, max_requests: int = 2_000_000,
                 interval_s: float = 0.0, timeout_s: float = 5.0,
                 version_header: str | None = None) -> None:
        self.host, self.port, self.path = host, port, path
        self.version_header = version_header
        self.workers, self.interval_s, self.timeout_s = workers, interval_s, timeout_s
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.result = ProbeResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> TrafficProbe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        for index in range(self.workers):
            # half the workers keep connections alive, half open one per request
            thread = threading.Thread(target=self._work, args=(deadline, index % 2 == 0),
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> ProbeResult:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout_s + 5)
        return self.result

    def wait_for(self, count: int, timeout_s: float = 30.0) -> None:
        """Block until at least `count` responses were counted (or raise at the deadline)."""
        deadline = time.monotonic() + timeout_s
        while self.result.total < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"probe counted only {self.result.total} responses "
                                   f"in {timeout_s}s")
            time.sleep(0.05)

    def _record(self, status: int, version: str | None, error: str = "") -> bool:
        with self._lock:
            self.result.samples.append(Sample(time.monotonic(), status, version, error))
            return len(self.result.samples) < self.max_requests

    def _work(self, deadline: float, keep_alive: bool) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            status, version, error = 0, None, ""
            reused = conn.sock is not None  # a kept-alive connection, not a new one
            try:
                conn.request("GET", self.path,
                             headers={} if keep_alive else {"Connection": "close"})
                response = conn.getresponse()
                body = response.read()
                status = response.status
                if status == 200 and self.version_header:
                    version = response.getheader(self.version_header)
                elif status == 200 and self.path == "/version":
                    version = json.loads(body).get("version")
            except (OSError, http.client.HTTPException, ValueError) as exc:
                status = 0
                error = f"{type(exc).__name__}: {exc}"[:120] + (" (kept-alive)" if reused else "")
            if not keep_alive or status != 200:
                conn.close()
                conn = None
            if not self._record(status, version, error):
                break
            if self.interval_s:
                self._stop.wait(self.interval_s)
        if conn is not None:
            conn.close()
