"""Unit tests for turnout.artifact: reproducible builds, version checks, finding artifacts."""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from pathlib import Path

import pytest

from turnout.artifact import (
    BROKEN_VARIANTS,
    DEFAULT_SOURCE_DATE_EPOCH,
    Artifact,
    build,
    find_artifact,
    read_sha256_file,
    sha256_of,
    validate_version,
)
from turnout.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_APP = REPO_ROOT / "examples" / "app"


@pytest.fixture(autouse=True)
def _no_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds in these tests must not depend on the caller's environment."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    """A minimal app source: app.py and a release-notes template."""
    source = tmp_path / "src-app"
    source.mkdir()
    (source / "app.py").write_text("print('hello')\n")
    (source / "RELEASE_NOTES.md").write_text("# app {version}\n\n{notes}\n")
    return source


def members(artifact: Artifact) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(artifact.path, "r:gz") as tar:
        return {member.name: member for member in tar.getmembers()}


def read_member(artifact: Artifact, name: str) -> str:
    with tarfile.open(artifact.path, "r:gz") as tar:
        stream = tar.extractfile(name)
        assert stream is not None
        return stream.read().decode()


# --- reproducibility ---------------------------------------------------------------------


def test_same_inputs_give_identical_archives(tmp_path: Path, source_dir: Path) -> None:
    first = build("1.2.3", tmp_path / "a", source_dir)
    second = build("1.2.3", tmp_path / "b", source_dir)
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.size == second.size == first.path.stat().st_size


def test_rebuild_in_place_is_identical(tmp_path: Path, source_dir: Path) -> None:
    first = build("1.2.3", tmp_path, source_dir)
    (source_dir / "app.py").touch()  # a newer source mtime must not change the archive
    second = build("1.2.3", tmp_path, source_dir)
    assert first == second


def test_different_version_gives_different_sha(tmp_path: Path, source_dir: Path) -> None:
    older = build("1.2.3", tmp_path, source_dir)
    newer = build("1.2.4", tmp_path, source_dir)
    assert older.sha256 != newer.sha256


def test_different_source_gives_different_sha(tmp_path: Path, source_dir: Path) -> None:
    before = build("1.2.3", tmp_path / "a", source_dir)
    (source_dir / "app.py").write_text("print('changed')\n")
    after = build("1.2.3", tmp_path / "b", source_dir)
    assert before.sha256 != after.sha256


def test_source_date_epoch_sets_mtime(
    tmp_path: Path, source_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = build("1.0", tmp_path / "a", source_dir)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567890")
    pinned = build("1.0", tmp_path / "b", source_dir)
    assert {m.mtime for m in members(pinned).values()} == {1234567890}
    assert pinned.sha256 != default.sha256


def test_bad_source_date_epoch_is_input_error(
    tmp_path: Path, source_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(InputError, match="SOURCE_DATE_EPOCH"):
        build("1.0", tmp_path, source_dir)


def test_gzip_header_has_no_name_and_no_time(tmp_path: Path, source_dir: Path) -> None:
    header = build("1.0", tmp_path, source_dir).path.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] & 0x08 == 0, "FNAME flag set: the gzip header carries a file name"
    assert header[4:8] == b"\x00\x00\x00\x00", "gzip header mtime is not 0"


# --- archive content ---------------------------------------------------------------------


def test_archive_members_modes_owner_mtime(tmp_path: Path, source_dir: Path) -> None:
    artifact = build("1.2.3", tmp_path, source_dir)
    assert artifact.path == tmp_path / "app-1.2.3.tar.gz"
    found = members(artifact)
    assert list(found) == [
        "app-1.2.3",
        "app-1.2.3/RELEASE_NOTES.md",
        "app-1.2.3/VERSION",
        "app-1.2.3/app.py",
    ]
    assert found["app-1.2.3"].isdir()
    assert found["app-1.2.3"].mode == 0o755
    for name, member in found.items():
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", ""), name
        assert member.mtime == DEFAULT_SOURCE_DATE_EPOCH, name
        if name != "app-1.2.3":
            assert member.isfile(), name
            assert member.mode == 0o644, name


def test_version_file_and_app_content(tmp_path: Path, source_dir: Path) -> None:
    artifact = build("2.0.0-rc.1+build.7", tmp_path, source_dir)
    top = "app-2.0.0-rc.1+build.7"
    assert read_member(artifact, f"{top}/VERSION") == "2.0.0-rc.1+build.7\n"
    assert read_member(artifact, f"{top}/app.py") == "print('hello')\n"


def test_release_notes_filled_from_template(tmp_path: Path, source_dir: Path) -> None:
    with_notes = build("1.0", tmp_path / "a", source_dir, notes="Faster /healthz.")
    without = build("1.0", tmp_path / "b", source_dir)
    assert read_member(with_notes, "app-1.0/RELEASE_NOTES.md") == "# app 1.0\n\nFaster /healthz.\n"
    assert "{notes}" not in read_member(without, "app-1.0/RELEASE_NOTES.md")
    assert with_notes.sha256 != without.sha256


def test_sha256_file_is_sha256sum_compatible(tmp_path: Path, source_dir: Path) -> None:
    artifact = build("1.2.3", tmp_path, source_dir)
    sha_file = tmp_path / "app-1.2.3.tar.gz.sha256"
    expected = hashlib.sha256(artifact.path.read_bytes()).hexdigest()
    assert sha_file.read_text() == f"{expected}  app-1.2.3.tar.gz\n"
    assert artifact.sha256 == expected == sha256_of(artifact.path) == read_sha256_file(sha_file)


def test_build_leaves_no_temp_files(tmp_path: Path, source_dir: Path) -> None:
    build("1.2.3", tmp_path / "dist", source_dir)
    names = sorted(p.name for p in (tmp_path / "dist").iterdir())
    assert names == ["app-1.2.3.tar.gz", "app-1.2.3.tar.gz.sha256"]


def test_builds_the_real_example_app(tmp_path: Path) -> None:
    artifact = build("0.1.0", tmp_path, EXAMPLE_APP)
    assert read_member(artifact, "app-0.1.0/app.py") == (EXAMPLE_APP / "app.py").read_text()
    notes = read_member(artifact, "app-0.1.0/RELEASE_NOTES.md")
    assert "0.1.0" in notes
    assert "{version}" not in notes


def test_archive_decompresses_cleanly(tmp_path: Path, source_dir: Path) -> None:
    artifact = build("1.0", tmp_path, source_dir)
    tar_bytes = gzip.decompress(artifact.path.read_bytes())
    assert len(tar_bytes) % 512 == 0


# --- broken variants ---------------------------------------------------------------------


@pytest.mark.parametrize("variant", BROKEN_VARIANTS)
def test_broken_variant_adds_broken_file(tmp_path: Path, source_dir: Path, variant: str) -> None:
    good = build("1.2.3", tmp_path / "good", source_dir)
    broken = build("1.2.3", tmp_path / "broken", source_dir, broken=variant)
    assert read_member(broken, "app-1.2.3/BROKEN") == f"{variant}\n"
    assert read_member(broken, "app-1.2.3/VERSION") == "1.2.3\n"
    assert members(broken)["app-1.2.3/BROKEN"].mode == 0o644
    assert "app-1.2.3/BROKEN" not in members(good)
    assert broken.sha256 != good.sha256


def test_unknown_broken_variant_is_refused(tmp_path: Path, source_dir: Path) -> None:
    with pytest.raises(InputError, match="unknown broken variant 'flaky'"):
        build("1.2.3", tmp_path, source_dir, broken="flaky")
    assert not (tmp_path / "app-1.2.3.tar.gz").exists()


def test_missing_app_source_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no app.py in"):
        build("1.2.3", tmp_path / "dist", tmp_path)


# --- version validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    "version", ["1", "1.2.3", "1.4.2", "2.0.0-rc.1", "1.0.0+build.5", "v1_2", "a" * 64]
)
def test_valid_versions(version: str) -> None:
    assert validate_version(version) == version


@pytest.mark.parametrize(
    "version",
    [
        "1.0;rm -rf /",
        "$(x)",
        "`id`",
        "",
        " ",
        "1.0 beta",
        "../x",
        "1..2",
        "x/y",
        ".hidden",
        "-rf",
        "1.0\n",
        "1.0\nEVIL",
        "a" * 65,
        "1.0é",
    ],
)
def test_invalid_versions_raise_input_error(tmp_path: Path, source_dir: Path, version: str) -> None:
    with pytest.raises(InputError, match=r"^invalid version .*: .*use letters, digits"):
        validate_version(version)
    with pytest.raises(InputError):
        build(version, tmp_path, source_dir)
    assert list(tmp_path.glob("*.tar.gz")) == []


def test_invalid_version_message_is_one_actionable_line() -> None:
    with pytest.raises(InputError) as excinfo:
        validate_version("a;b")
    assert str(excinfo.value) == (
        "invalid version 'a;b': use letters, digits, '.', '_', '+', '-' (max 64 chars, no '..')"
    )


# --- finding artifacts -------------------------------------------------------------------


def test_find_artifact_returns_the_built_one(tmp_path: Path, source_dir: Path) -> None:
    built = build("1.2.3", tmp_path, source_dir)
    assert find_artifact("1.2.3", tmp_path) == built


def test_find_artifact_missing(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    with pytest.raises(InputError) as excinfo:
        find_artifact("1.2.3", dist)
    assert str(excinfo.value) == (
        f"no artifact for version 1.2.3 in {dist}/: build it with 'invoke build --version 1.2.3'"
    )


def test_find_artifact_relative_dist_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"^no artifact for version 1\.2\.3 in dist/: "):
        find_artifact("1.2.3", Path("dist"))


def test_find_artifact_sha_mismatch(tmp_path: Path, source_dir: Path) -> None:
    built = build("1.2.3", tmp_path, source_dir)
    built.path.write_bytes(built.path.read_bytes() + b"tampered")
    with pytest.raises(InputError) as excinfo:
        find_artifact("1.2.3", tmp_path)
    message = str(excinfo.value)
    assert message.startswith(f"artifact {built.path} does not match its sha256 file: rebuild it")
    assert "invoke build --version 1.2.3" in message


def test_find_artifact_missing_sha_file(tmp_path: Path, source_dir: Path) -> None:
    build("1.2.3", tmp_path, source_dir)
    (tmp_path / "app-1.2.3.tar.gz.sha256").unlink()
    with pytest.raises(InputError, match="has no app-1.2.3.tar.gz.sha256: rebuild it"):
        find_artifact("1.2.3", tmp_path)


def test_find_artifact_malformed_sha_file(tmp_path: Path, source_dir: Path) -> None:
    build("1.2.3", tmp_path, source_dir)
    (tmp_path / "app-1.2.3.tar.gz.sha256").write_text("not-a-checksum  app-1.2.3.tar.gz\n")
    with pytest.raises(InputError, match="is not a sha256 file"):
        find_artifact("1.2.3", tmp_path)


def test_find_artifact_rejects_bad_version(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="invalid version"):
        find_artifact("../../etc/passwd", tmp_path)


def test_read_sha256_file_accepts_binary_marker_and_uppercase(tmp_path: Path) -> None:
    sha_file = tmp_path / "x.sha256"
    sha_file.write_text("AB" * 32 + " *app-1.tar.gz\n")
    assert read_sha256_file(sha_file) == "ab" * 32


def test_find_by_sha256_and_release_notes(tmp_path):
    from turnout import artifact as artifact_module
    source = Path(__file__).resolve().parents[2] / "examples" / "app"
    built = artifact_module.build("7.7.7", tmp_path, source, notes="seven")
    found = artifact_module.find_by_sha256(built.sha256, tmp_path)
    assert (found.version, found.path) == ("7.7.7", built.path)
    assert "seven" in artifact_module.release_notes(built.path)
    with pytest.raises(InputError, match="no artifact with sha256"):
        artifact_module.find_by_sha256("f" * 64, tmp_path)
