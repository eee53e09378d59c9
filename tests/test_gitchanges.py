"""plan --changed-since: which spec files changed since a git ref."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.gitchanges import GitChangesError, SpecChanges, changed_spec_files

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def _write(path: Path, text: str = "version: 1\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A repository with five committed specs, a README and a tag `base` on that commit."""
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "config", "user.email", "ci@example.com")
    _git(tmp_path, "config", "user.name", "CI")
    _git(tmp_path, "config", "commit.gpgsign", "false")
    for name in ("abc", "globex", "initech", "umbrella", "hooli"):
        _write(tmp_path / "specs" / "customers" / f"{name}.yaml", f"version: 1\n# {name}\n")
    _write(tmp_path / "README.md", "readme\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "specs")
    _git(tmp_path, "tag", "base")
    return tmp_path


def _change_everything(repo: Path, *, commit: bool) -> None:
    customers = repo / "specs" / "customers"
    _write(customers / "acme.yml")  # added
    _write(customers / "abc.yaml", "version: 1\n# changed\n")  # modified
    _git(repo, "mv", "specs/customers/globex.yaml", "specs/customers/globex-corp.yaml")  # renamed
    _git(repo, "rm", "-q", "specs/customers/initech.yaml")  # deleted
    _write(repo / "README.md", "changed, not a spec\n")
    _write(customers / "notes.txt", "not a spec\n")
    if commit:
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "change")


EXPECTED = SpecChanges(
    changed=[
        "specs/customers/abc.yaml",
        "specs/customers/acme.yml",
        "specs/customers/globex-corp.yaml",
    ],
    deleted=["specs/customers/globex.yaml", "specs/customers/initech.yaml"],
)


def test_committed_changes(repo: Path) -> None:
    _change_everything(repo, commit=True)
    assert changed_spec_files("base", ["specs/"], cwd=str(repo)) == EXPECTED


def test_working_tree_and_untracked_changes(repo: Path) -> None:
    _change_everything(repo, commit=False)
    assert changed_spec_files("base", ["specs"], cwd=str(repo)) == EXPECTED


def test_unstaged_edit_and_deletion(repo: Path) -> None:
    _write(repo / "specs" / "customers" / "hooli.yaml", "version: 1\n# edited\n")
    (repo / "specs" / "customers" / "umbrella.yaml").unlink()
    assert changed_spec_files("HEAD", ["specs"], cwd=str(repo)) == SpecChanges(
        changed=["specs/customers/hooli.yaml"], deleted=["specs/customers/umbrella.yaml"]
    )


def test_no_changes(repo: Path) -> None:
    assert changed_spec_files("base", ["specs"], cwd=str(repo)) == SpecChanges([], [])


def test_only_the_given_paths_count(repo: Path) -> None:
    _change_everything(repo, commit=True)
    result = changed_spec_files("base", ["specs/customers/abc.yaml"], cwd=str(repo))
    assert result == SpecChanges(changed=["specs/customers/abc.yaml"], deleted=[])


def test_paths_are_relative_to_cwd(repo: Path) -> None:
    _change_everything(repo, commit=True)
    result = changed_spec_files("base", ["customers"], cwd=str(repo / "specs"))
    assert result.changed == [
        "customers/abc.yaml",
        "customers/acme.yml",
        "customers/globex-corp.yaml",
    ]
    assert result.deleted == ["customers/globex.yaml", "customers/initech.yaml"]


def test_ignored_files_do_not_count(repo: Path) -> None:
    _write(repo / ".gitignore", "*.local.yaml\n")
    _write(repo / "specs" / "customers" / "scratch.local.yaml")
    assert changed_spec_files("base", ["specs"], cwd=str(repo)) == SpecChanges([], [])


def test_a_ref_that_moved_on_compares_with_the_merge_base(repo: Path) -> None:
    # main gains a change after the branch left it: that is not a change of the branch.
    _git(repo, "checkout", "-q", "-b", "feature")
    _write(repo / "specs" / "customers" / "abc.yaml", "version: 1\n# feature\n")
    _git(repo, "commit", "-q", "-am", "feature")
    _git(repo, "checkout", "-q", "main")
    _write(repo / "specs" / "customers" / "hooli.yaml", "version: 1\n# main moved on\n")
    _git(repo, "commit", "-q", "-am", "main")
    _git(repo, "checkout", "-q", "feature")
    assert changed_spec_files("main", ["specs"], cwd=str(repo)) == SpecChanges(
        changed=["specs/customers/abc.yaml"], deleted=[]
    )


def test_unknown_ref(repo: Path) -> None:
    with pytest.raises(GitChangesError, match=r"^unknown git ref 'xyz'"):
        changed_spec_files("xyz", ["specs"], cwd=str(repo))


def test_not_a_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Keep git from finding a repository above the temporary folder.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    with pytest.raises(GitChangesError, match="not a git repository"):
        changed_spec_files("HEAD", ["specs"], cwd=str(tmp_path))


def test_git_missing(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(GitChangesError, match="git is not installed"):
        changed_spec_files("HEAD", ["specs"], cwd=str(repo))


def test_a_git_that_hangs_is_given_up_on_with_a_message(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A git that never answers (a credential prompt, a stuck filesystem) fails the command after
    the limit (120 s; 1 s here) instead of hanging it until the CI job is killed."""
    import time

    from reconciler import gitchanges

    assert gitchanges.GIT_TIMEOUT_SECONDS == 120  # what docs/interrupts.md promises
    monkeypatch.setattr(gitchanges, "GIT_TIMEOUT_SECONDS", 1.0)
    stuck = tmp_path / "stuck-git"
    stuck.mkdir()
    (stuck / "git").write_text("#!/bin/sh\nexec sleep 60\n")
    (stuck / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{stuck}:{os.environ['PATH']}")
    started = time.monotonic()
    with pytest.raises(GitChangesError, match=r"^git rev-parse did not answer within 1 s$"):
        changed_spec_files("HEAD", ["specs"], cwd=str(repo))
    assert time.monotonic() - started < 5  # not the fake git's 60 s


def test_a_git_that_cannot_be_started_is_named_as_such(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "broken-bin"
    broken.mkdir()
    (broken / "git").write_text("#!/bin/sh\n")  # not executable
    monkeypatch.setenv("PATH", str(broken))
    with pytest.raises(GitChangesError, match=r"^cannot run git: Permission denied$"):
        changed_spec_files("HEAD", ["specs"], cwd=str(repo))
