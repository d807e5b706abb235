"""turnout.layout: checkout vs installed content and workspace (pure path logic)."""

from pathlib import Path

from turnout import layout


def _checkout(root: Path) -> Path:
    for name in ("playbooks", "roles"):
        (root / name).mkdir(parents=True)
    (root / "ansible.cfg").write_text("[defaults]\n")
    package = root / "src" / "turnout"
    package.mkdir(parents=True)
    return package


def test_checkout_is_content_and_workspace(tmp_path):
    package = _checkout(tmp_path / "repo")
    found = layout.resolve(package, cwd=tmp_path / "elsewhere")
    assert found == layout.Layout(tmp_path / "repo", tmp_path / "repo", installed=False)
    assert found.command == "invoke"


def test_installed_uses_packaged_content_and_cwd(tmp_path):
    package = tmp_path / "venv" / "lib" / "python3.12" / "site-packages" / "turnout"
    package.mkdir(parents=True)
    found = layout.resolve(package, cwd=tmp_path / "team")
    assert found.content == package / "_content"
    assert found.workspace == (tmp_path / "team").resolve()
    assert found.installed and found.command == "turnout"


def test_src_without_content_is_not_a_checkout(tmp_path):
    package = tmp_path / "other" / "src" / "turnout"
    package.mkdir(parents=True)
    assert layout.resolve(package, cwd=tmp_path).installed


def test_this_checkout_is_detected():
    assert not layout.current().installed
