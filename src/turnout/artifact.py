"""Build and find versioned app artifacts: `app-<version>.tar.gz` plus its `.sha256` file.

Builds are reproducible: the same source, version, variant, notes and SOURCE_DATE_EPOCH give
a byte-identical archive (sorted entries, fixed mtime, owner 0:0 with empty names, fixed
modes, gzip header without name or time). An artifact is identified by version and sha256.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnout.contracts import VERSION_RULE, is_sha256, is_version
from turnout.errors import InputError

BROKEN_VARIANTS = ("unhealthy", "wrong-version", "crash", "slow")
DEFAULT_SOURCE_DATE_EPOCH = 1700000000
DEFAULT_NOTES = "No release notes."

_FILE_MODE = 0o644
_DIR_MODE = 0o755
_CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class Artifact:
    """A built artifact on disk: its version, archive path, sha256 (hex) and size in bytes."""

    version: str
    path: Path
    sha256: str
    size: int


def validate_version(version: str) -> str:
    """Return `version` if it is safe as a file name and shell word; else raise InputError."""
    if version is None:
        raise InputError("--version is required: name the release, e.g. --version 1.4.2")
    if not isinstance(version, str):
        raise InputError(f"invalid version {version!r}: {VERSION_RULE}")
    shown = version if len(version) <= 80 else version[:77] + "..."
    if not is_version(version):
        raise InputError(f"invalid version {shown!r}: {VERSION_RULE}")
    return version


def archive_name(version: str) -> str:
    """File name of the archive for `version`: app-<version>.tar.gz."""
    return f"app-{validate_version(version)}.tar.gz"


def source_date_epoch() -> int:
    """The archive mtime: SOURCE_DATE_EPOCH if set, else a fixed constant."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return DEFAULT_SOURCE_DATE_EPOCH
    if not raw.isdigit():
        raise InputError(
            f"invalid SOURCE_DATE_EPOCH {raw!r}: use whole seconds since 1970, or unset it"
        )
    return int(raw)


def release_files(
    version: str, source_dir: Path, broken: str | None = None, notes: str | None = None
) -> dict[str, bytes]:
    """The files of one release (name -> content), read from `source_dir`."""
    validate_version(version)
    if broken is not None and broken not in BROKEN_VARIANTS:
        raise InputError(
            f"unknown broken variant {broken!r}: use one of {', '.join(BROKEN_VARIANTS)}"
        )
    app_py = source_dir / "app.py"
    if not app_py.is_file():
        raise InputError(f"no app.py in {source_dir}: point the build at the app source")
    template_path = source_dir / "RELEASE_NOTES.md"
    template = (
        template_path.read_text(encoding="utf-8")
        if template_path.is_file()
        else "# app {version}\n\n{notes}\n"
    )
    notes_text = notes.strip() if notes and notes.strip() else DEFAULT_NOTES
    release_notes = template.replace("{version}", version).replace("{notes}", notes_text)
    files = {
        "app.py": app_py.read_bytes(),
        "VERSION": f"{version}\n".encode(),
        "RELEASE_NOTES.md": release_notes.encode("utf-8"),
    }
    if broken is not None:
        files["BROKEN"] = f"{broken}\n".encode()
    return files


def _tar_info(name: str, mtime: int, size: int = 0, directory: bool = False,
              mode: int | None = None) -> tarfile.TarInfo:
    """A tar header with fixed owner, mode and mtime."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = mode if mode is not None else (_DIR_MODE if directory else _FILE_MODE)
    info.size = size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def archive_bytes(version: str, files: dict[str, bytes], mtime: int,
                  top: str | None = "", executables: frozenset[str] = frozenset()) -> bytes:
    """A deterministic .tar.gz of `files` in sorted order, under the directory `top`
    (``app-<version>`` by default; None for a flat archive). Names in `executables` get
    mode 0755."""
    validate_version(version)
    top = f"app-{version}" if top == "" else top
    prefix = f"{top}/" if top else ""
    raw = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        if top:
            tar.addfile(_tar_info(top, mtime, directory=True))
        directories = sorted({"/".join(name.split("/")[:i]) for name in files
                              for i in range(1, name.count("/") + 1)})
        for directory in directories:
            tar.addfile(_tar_info(prefix + directory, mtime, directory=True))
        for name in sorted(files):
            content = files[name]
            mode = _DIR_MODE if name in executables else None
            tar.addfile(_tar_info(prefix + name, mtime, len(content), mode=mode),
                        io.BytesIO(content))
    return raw.getvalue()


def write(path: Path, content: bytes, version: str) -> Artifact:
    """Write an archive and its .sha256 file atomically; return the Artifact."""
    digest = hashlib.sha256(content).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, content)
    _write_atomically(sha256_path(path), f"{digest}  {path.name}\n".encode())
    return Artifact(version=version, path=path, sha256=digest, size=len(content))


def _write_atomically(path: Path, content: bytes) -> None:
    """Write `content` to `path` via a temp file in the same directory and os.replace."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(content)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, _FILE_MODE)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def build(
    version: str,
    out_dir: Path,
    source_dir: Path,
    broken: str | None = None,
    notes: str | None = None,
) -> Artifact:
    """Build `out_dir/app-<version>.tar.gz` and its `.sha256` file; return the Artifact.

    `broken` names a deliberately broken variant for tests (see BROKEN_VARIANTS); the
    version inside stays `version`. `notes` fills the release-notes template.
    """
    files = release_files(version, Path(source_dir), broken=broken, notes=notes)
    content = archive_bytes(version, files, source_date_epoch())
    return write(Path(out_dir) / archive_name(version), content, version)


def sha256_path(archive: Path) -> Path:
    """The checksum file beside `archive`: <archive>.sha256."""
    return archive.with_name(archive.name + ".sha256")


def sha256_of(path: Path) -> str:
    """The sha256 (lowercase hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def read_sha256_file(path: Path) -> str:
    """The checksum (lowercase hex) from a sha256sum-style file `<hex>  <name>`."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}; rebuild the artifact") from None
    words = text.split(maxsplit=1)
    recorded = words[0].lower() if words else ""
    if not is_sha256(recorded):
        raise InputError(f"{path} is not a sha256 file ('<64 hex>  <name>'): rebuild the artifact")
    return recorded


def find_artifact(version: str, dist_dir: Path, file_name: str | None = None) -> Artifact:
    """The built artifact for `version` in `dist_dir` (named `file_name`, the app
    definition's artifact name; app-<version>.tar.gz by default), checked against its sha256
    file."""
    validate_version(version)
    name = file_name or archive_name(version)
    rebuild = (f"'invoke build --version {version}'" if file_name in (None, archive_name(version))
               else f"'invoke build --version {version}' (or copy {name} and {name}.sha256 "
                    "there, or pass --artifact PATH_OR_URL --sha256 HEX)")
    path = Path(dist_dir) / name
    if not path.is_file():
        raise InputError(
            f"no artifact for version {version} in {dist_dir}/: build it with {rebuild}"
        )
    checksum_file = sha256_path(path)
    if not checksum_file.is_file():
        raise InputError(f"artifact {path} has no {checksum_file.name}: rebuild it with {rebuild}")
    recorded = read_sha256_file(checksum_file)
    actual = sha256_of(path)
    if actual != recorded:
        raise InputError(
            f"artifact {path} does not match its sha256 file: rebuild it with {rebuild}"
        )
    return Artifact(version=version, path=path, sha256=actual, size=path.stat().st_size)


def release_notes(archive: Path, limit: int = 4000) -> str | None:
    """The RELEASE_NOTES.md inside a built artifact (first `limit` characters), or None."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.rsplit("/", 1)[-1] == "RELEASE_NOTES.md":
                    handle = tar.extractfile(member)
                    if handle is None:
                        return None
                    text = handle.read(limit * 4).decode("utf-8", errors="replace").strip()
                    return text[:limit] or None
    except (OSError, tarfile.TarError):
        return None
    return None


def find_by_sha256(sha256: str, dist_dir: Path, pattern: str = "{name}-{version}.tar.gz",
                   name: str = "app") -> Artifact:
    """The artifact in `dist_dir` whose content has `sha256` (build once, deploy everywhere),
    named by the app definition's ``pattern`` (``{name}-{version}.tar.gz``)."""
    regex = re.compile("\\A" + re.escape(pattern).replace(re.escape("{name}"), re.escape(name))
                       .replace(re.escape("{version}"), "(?P<version>.+)") + "\\Z")
    for checksum_file in sorted(Path(dist_dir).glob("*.sha256")):
        try:
            recorded = read_sha256_file(checksum_file)
        except InputError:
            continue
        if recorded != sha256:
            continue
        path = checksum_file.with_name(checksum_file.name[: -len(".sha256")])
        match = regex.match(path.name)
        if match and path.is_file() and sha256_of(path) == sha256:
            return Artifact(version=match.group("version"), path=path, sha256=sha256,
                            size=path.stat().st_size)
    raise InputError(f"no artifact with sha256 {sha256[:12]}... in {dist_dir}/: copy the "
                     "artifact that was deployed there into dist/ (build once, deploy everywhere)")


URL_SCHEMES = ("http://", "https://")
FETCH_TIMEOUT_S = 60


def is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(URL_SCHEMES)


def fetch(url: str, sha256: str, target: Path, opener: Any = None) -> Path:
    """Download ``url`` once into ``target`` (kept with its .sha256 beside it, so a second
    deploy, and --from by sha256, find it in dist/) with ``sha256`` enforced before anything
    is staged; a wrong or missing sha256 is bad input and leaves nothing behind."""
    import urllib.request

    expected = str(sha256 or "").strip().lower()
    if not is_sha256(expected):
        raise InputError(f"an artifact URL needs its sha256: pass --sha256 <64 hex> "
                         f"(or -e turnout_artifact_sha256=...) for {url[:80]}")
    if _kept(target, expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, \
                (opener or urllib.request.urlopen)(url, timeout=FETCH_TIMEOUT_S) as answer:
            while chunk := answer.read(_CHUNK_SIZE):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected:
            raise InputError(f"{url[:80]} has sha256 {digest.hexdigest()}, expected {expected}: "
                             "fix --sha256 or the URL; nothing was staged")
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, target)
        _write_atomically(sha256_path(target), f"{expected}  {target.name}\n".encode())
    except OSError as error:
        raise InputError(f"cannot fetch {url[:80]}: {error}; check the URL") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def _kept(target: Path, sha256: str) -> bool:
    """True when ``target`` in dist/ already holds the artifact with ``sha256``; refused when
    it holds another one (it may be live somewhere: --from and rollback --to find it there)."""
    if not target.is_file():
        return False
    actual = sha256_of(target)
    if actual != sha256:
        raise InputError(f"{target} already holds another artifact (sha256 {actual[:12]}...), "
                         "which --from and rollback --to may need: deploy that one, or give "
                         "this release another version")
    if not sha256_path(target).is_file():
        _write_atomically(sha256_path(target), f"{sha256}  {target.name}\n".encode())
    return True


def keep(path: Path, sha256: str, target: Path) -> Path:
    """Copy the artifact at ``path`` into dist/ as ``target`` (with its .sha256) unless it is
    there already, so that --from (by sha256) and rollback --to find it after this deploy."""
    if path.resolve() == target.resolve() or _kept(target, sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, open(path, "rb") as source:
            while chunk := source.read(_CHUNK_SIZE):
                out.write(chunk)
        if sha256_of(Path(tmp)) != sha256:
            raise InputError(f"{path} changed while it was copied into {target.parent}/: "
                             "deploy it again")
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, target)
        _write_atomically(sha256_path(target), f"{sha256}  {target.name}\n".encode())
    except OSError as error:
        raise InputError(f"cannot copy {path} into {target.parent}/: {error}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def check_deploy_inputs(version: Any, artifact: Any, sha256: Any, dist_dir: Path,
                        file_name: str | None = None) -> dict[str, Any]:
    """What a deploy ships, checked on the controller before anything runs (the playbooks'
    preflight; invoke checks the same through :func:`find_artifact`).

    ``artifact`` defaults to ``<dist_dir>/<file_name>`` (the app definition's artifact name,
    ``app-<version>.tar.gz`` for the sample app); a URL is fetched into ``dist_dir`` once, with
    ``sha256`` enforced. ``sha256`` defaults to the first word of ``<artifact>.sha256``.
    Returns {version, artifact, sha256, release_notes}.
    """
    if not is_version(version):
        shown = str(version)[:80] if version is not None else "(missing)"
        raise InputError(f"invalid turnout_version {shown}: pass -e turnout_version=<version> "
                         f"and {VERSION_RULE}")
    name = file_name or archive_name(version)
    if is_url(artifact):
        path = fetch(str(artifact), str(sha256 or ""), Path(dist_dir) / name)
    else:
        path = Path(str(artifact)) if artifact else Path(dist_dir) / name
    if not path.is_file():
        raise InputError(f"artifact {path} not found: build it (invoke build --version "
                         f"{version}) or pass -e turnout_artifact=<path>")
    expected = str(sha256 or "").strip().split()[0].lower() if str(sha256 or "").strip() else ""
    if not expected and sha256_path(path).is_file():
        text = sha256_path(path).read_text(encoding="utf-8", errors="replace").split()
        expected = text[0].lower() if text else ""
    actual = sha256_of(path)
    if not is_sha256(expected) or actual != expected:
        raise InputError(
            f"artifact {path} has sha256 {actual}, expected "
            f"{expected or '(none: no .sha256 file and no turnout_artifact_sha256)'}; "
            "rebuild the artifact or fix turnout_artifact_sha256")
    return {"version": version, "artifact": str(path), "sha256": actual,
            "release_notes": release_notes(path)}


def given(version: str, artifact: str, sha256: str, dist_dir: Path, file_name: str) -> Artifact:
    """The artifact an operator named (--artifact PATH_OR_URL, --sha256 HEX), checked: a URL
    is fetched into ``dist_dir`` once with the sha256 enforced; a path needs --sha256 or a
    .sha256 file beside it, and is copied into ``dist_dir``. Either way it is kept there under
    the app definition's artifact name, where --from and rollback --to find it by sha256."""
    validate_version(version)
    if sha256 and not is_sha256(str(sha256).strip().lower()):
        raise InputError(f"--sha256 {str(sha256)[:80]!r} is not a sha256: give 64 hex digits")
    if not is_url(artifact) and not Path(artifact).is_file():
        raise InputError(f"--artifact {artifact}: no such file; give a path or an http(s) URL")
    if not is_url(artifact) and not sha256 and not sha256_path(Path(artifact)).is_file():
        raise InputError(f"--artifact {artifact} has no {Path(artifact).name}.sha256 beside "
                         "it: pass --sha256 HEX (the sha256 your build published)")
    checked = check_deploy_inputs(version, artifact, sha256, dist_dir, file_name)
    path = keep(Path(checked["artifact"]), checked["sha256"], Path(dist_dir) / file_name)
    return Artifact(version=version, path=path, sha256=checked["sha256"],
                    size=path.stat().st_size)
