"""One set of spec files everywhere: discovery, --changed-since, fmt, adopt and the pre-commit
hooks take the same files (suffixes in any case), and no link leaving its folder is read or
written."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from reconciler.gitchanges import changed_spec_files
from reconciler.specfiles import SPEC_FILES_PATTERN, discover, is_spec_name
from tests.conftest import Billing, write
from tests.helpers import FIXTURES, REPO, run_cli

BETA = """\
version: 1
customer: {id: 200, name: Beta}
extensions:
  - {extension: "1", name: Carol, product: Cloud PBX service}
  - {extension: "2", name: Dave, product: Cloud PBX service}
"""

MESSY_BETA = "version: 1\ncustomer: {name: Beta, id: 200}\nextensions: []\n"

NAMES = {
    "abc.yaml": True, "abc.yml": True, "contoso.YAML": True, "x.Yml": True, "y.yAmL": True,
    "abc.yaml.bak": False, "abc.json": False, "yaml": False, "notes.txt": False, "abcyaml": False,
}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_spec_name_is_yaml_or_yml_in_any_case() -> None:
    assert {name: is_spec_name(name) for name in NAMES} == NAMES
    assert is_spec_name("specs/customers/contoso.YAML")
    assert not is_spec_name("specs.yaml/notes.txt")  # the name decides, not a folder's


def test_the_pre_commit_hooks_take_the_same_files() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hooks
    for hook in hooks:
        pattern = re.compile(hook["files"])
        for name, spec in NAMES.items():
            assert bool(pattern.search(f"specs/customers/{name}")) is spec, (hook["id"], name)
        assert re.search(SPEC_FILES_PATTERN, "specs/customers/contoso.YAML")
        # pre-commit passes only regular files unless told otherwise: links are the
        # reconciler's to judge (read inside the folder, refused outside).
        assert hook["types"] == [] and set(hook["types_or"]) == {"file", "symlink"}


def test_discovery_takes_every_case(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.YAML", "c.Yml", "d.txt"):
        write(tmp_path / name, "version: 1\n")
    assert [Path(p).name for p in discover([str(tmp_path)])] == ["a.yaml", "b.YAML", "c.Yml"]


# ---- --changed-since -----------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "config", "user.email", "ci@example.com")
    _git(tmp_path, "config", "user.name", "CI")
    _git(tmp_path, "config", "commit.gpgsign", "false")
    write(tmp_path / "specs" / "customers" / "acme.yaml", "version: 1\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "specs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_new_upper_case_yaml_file_is_a_change(repo: Path) -> None:
    write(repo / "specs" / "customers" / "contoso.YAML", BETA)
    write(repo / "specs" / "customers" / "globex.Yml", BETA)
    write(repo / "specs" / "customers" / "notes.txt", "not a spec\n")
    changes = changed_spec_files("HEAD", ["specs/customers"])
    assert changes.changed == ["specs/customers/contoso.YAML", "specs/customers/globex.Yml"]


def test_plan_changed_since_plans_a_new_upper_case_file(repo: Path) -> None:
    url = f"sqlite:///{repo / 'billing.db'}"
    assert run_cli("--backend", url, "state", "load", str(FIXTURES / "state.yaml")).code == 0
    write(repo / "specs" / "customers" / "contoso.YAML", BETA)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "contoso")
    result = run_cli("--backend", url, "plan", "--changed-since", "HEAD~1", "specs/customers",
                     "--format", "json", "--detailed-exitcode")
    assert result.code == 2, result
    plan = result.json
    assert [(c["customer"], c["file"]) for c in plan["customers"]] == [
        (200, "specs/customers/contoso.YAML")
    ]
    assert [c["account"] for c in plan["customers"][0]["changes"]] == ["ph200x2"]


# ---- fmt and adopt never follow a link out of the folder -----------------------------------------


@pytest.fixture
def escape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """own/evil.yaml, a link to outside/secret.yaml (a messy spec, so fmt would rewrite it)."""
    monkeypatch.chdir(tmp_path)
    outside = write(tmp_path / "outside" / "secret.yaml", MESSY_BETA)
    link = tmp_path / "own" / "evil.yaml"
    link.parent.mkdir()
    link.symlink_to(outside)
    return link, outside


@pytest.mark.parametrize("given", ["folder", "file"])
@pytest.mark.parametrize("check", [False, True])
def test_fmt_refuses_a_link_leaving_its_folder(escape: tuple[Path, Path], given: str,
                                               check: bool) -> None:
    link, outside = escape
    before = _digest(outside)
    args = ["fmt", *(["--check"] if check else []), "own" if given == "folder" else "own/evil.yaml"]
    result = run_cli(*args)
    assert result.code == 1, result
    assert (
        f"own/evil.yaml: the spec is a symbolic link to {outside}, outside its folder" in result.out
    )
    assert "not formatted (nothing was changed)" in result.out
    assert "reformatted own" not in result.out + result.err
    assert _digest(outside) == before
    assert link.is_symlink() and os.readlink(link) == str(outside)
    assert sorted(p.name for p in link.parent.iterdir()) == ["evil.yaml"]  # no file left behind


def test_fmt_writes_through_a_link_inside_its_folder(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    real = write(tmp_path / "specs" / "beta.yaml", MESSY_BETA)
    link = tmp_path / "specs" / "beta-link.yaml"
    link.symlink_to("beta.yaml")
    result = run_cli("fmt", "specs/beta-link.yaml")
    assert result.code == 0, result
    assert link.is_symlink() and os.readlink(link) == "beta.yaml"
    assert real.read_text() == "version: 1\ncustomer:\n  id: 200\n  name: Beta\nextensions: []\n"


def test_adopt_refuses_a_link_leaving_its_folder(billing: Billing,
                                                 escape: tuple[Path, Path]) -> None:
    link, outside = escape
    billing.load(FIXTURES / "state.yaml")
    # Billing has Carol (ph200x1), the spec lists no one: adopt would write her in.
    before = _digest(outside)
    result = billing.cli("adopt", "own")
    assert result.code == 1, result
    assert (
        f"the spec is a symbolic link to {outside}, outside its folder" in result.out + result.err
    )
    assert "Carol" not in result.out + result.err
    assert _digest(outside) == before
    assert link.is_symlink() and os.readlink(link) == str(outside)
    # The same spec as a regular file is adopted: the refusal is the link's, not the spec's.
    link.unlink()
    write(link, MESSY_BETA)
    assert billing.cli("adopt", "own").code == 0
    assert "Carol" in link.read_text()
