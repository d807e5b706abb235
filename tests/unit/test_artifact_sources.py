"""Unit tests for artifacts from anywhere (turnout.artifact.fetch, given, keep): a URL fetched
once from a real loopback HTTP server with its sha256 enforced, a path copied into dist/, and
both found again by sha256 (--from, rollback --to)."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from turnout import artifact
from turnout.errors import InputError

SOURCE = Path(__file__).resolve().parents[2] / "examples" / "app"


class Served(http.server.ThreadingHTTPServer):
    """A directory served on 127.0.0.1, counting the GETs of each path."""

    def __init__(self, directory: Path) -> None:
        gets: dict[str, int] = {}

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                gets[self.path] = gets.get(self.path, 0) + 1
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
        self.gets = gets

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


@pytest.fixture
def built(tmp_path: Path) -> artifact.Artifact:
    """app-2.0.0.tar.gz built outside dist/."""
    return artifact.build("2.0.0", tmp_path / "elsewhere", SOURCE)


@pytest.fixture
def server(built: artifact.Artifact) -> Iterator[Served]:
    served = Served(built.path.parent)
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield served
    served.shutdown()
    thread.join(timeout=5)


def leftovers(dist: Path) -> list[str]:
    return sorted(p.name for p in dist.iterdir()) if dist.exists() else []


def test_a_url_is_fetched_once_into_dist_and_found_again_by_sha256(tmp_path, built, server):
    dist = tmp_path / "dist"
    url = server.url(built.path.name)
    first = artifact.given("2.0.0", url, built.sha256, dist, "app-2.0.0.tar.gz")
    again = artifact.given("2.0.0", url, built.sha256, dist, "app-2.0.0.tar.gz")
    assert first.path == again.path == dist / "app-2.0.0.tar.gz"
    assert first.sha256 == built.sha256 == artifact.sha256_of(first.path)
    assert server.gets == {"/app-2.0.0.tar.gz": 1}
    assert artifact.read_sha256_file(dist / "app-2.0.0.tar.gz.sha256") == built.sha256
    found = artifact.find_by_sha256(built.sha256, dist)
    assert (found.version, found.path) == ("2.0.0", first.path)


@pytest.mark.parametrize(("sha256", "message"), [
    ("0" * 64, "expected " + "0" * 64 + ": fix --sha256 or the URL; nothing was staged"),
    ("", "an artifact URL needs its sha256: pass --sha256"),
])
def test_a_url_with_a_wrong_or_missing_sha256_is_refused_and_leaves_nothing(
        tmp_path, built, server, sha256, message):
    dist = tmp_path / "dist"
    with pytest.raises(InputError, match=message.replace("+", r"\+")):
        artifact.given("2.0.0", server.url(built.path.name), sha256, dist, "app-2.0.0.tar.gz")
    assert leftovers(dist) == []


def test_an_unreachable_url_is_one_input_error(tmp_path, built, server):
    with pytest.raises(InputError, match="cannot fetch .*: .*; check the URL"):
        artifact.given("2.0.0", server.url("missing.tar.gz"), built.sha256, tmp_path / "dist",
                       "app-2.0.0.tar.gz")
    assert leftovers(tmp_path / "dist") == []


def test_a_path_is_copied_into_dist_so_from_and_rollback_to_find_it(tmp_path, built):
    dist = tmp_path / "dist"
    given = artifact.given("2.0.0", str(built.path), "", dist, "app-2.0.0.tar.gz")
    assert given.path == dist / "app-2.0.0.tar.gz" and given.sha256 == built.sha256
    assert given.path.read_bytes() == built.path.read_bytes()
    assert artifact.find_by_sha256(built.sha256, dist).version == "2.0.0"
    assert leftovers(dist) == ["app-2.0.0.tar.gz", "app-2.0.0.tar.gz.sha256"]


def test_another_artifact_under_the_same_name_in_dist_is_never_replaced(tmp_path, built, server):
    dist = tmp_path / "dist"
    other = artifact.build("2.0.0", dist, SOURCE, notes="another build")
    assert other.sha256 != built.sha256
    for source in (str(built.path), server.url(built.path.name)):
        with pytest.raises(InputError, match="already holds another artifact"):
            artifact.given("2.0.0", source, built.sha256, dist, "app-2.0.0.tar.gz")
    assert artifact.sha256_of(dist / "app-2.0.0.tar.gz") == other.sha256
    assert server.gets == {}
