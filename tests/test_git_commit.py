"""The commit apply records in the audit log: the one the spec files come from.

In CI it is GITHUB_SHA; elsewhere it is HEAD of the git repository holding the specs, whatever
the working directory is. Specs in no repository, spread over several, or in a repository with
no commit yet come from no one commit, and apply records none rather than a wrong one.
In process and fast: the mutation run of reconciler/apply.py runs these once per mutant.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.apply import git_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

CI_SHA = "0123456789abcdef0123456789abcdef01234567"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def _repo(folder: Path, *, commit: bool = True) -> Path:
    """A git repository holding one spec file, committed unless told otherwise."""
    (folder / "specs").mkdir(parents=True)
    (folder / "specs" / "abc.yaml").write_text(f"# {folder.name}\nversion: 1\n")
    _git(folder, "init", "-q", "-b", "main")
    if commit:
        _git(folder, "-c", "user.email=ci@example.com", "-c", "user.name=CI",
             "-c", "commit.gpgsign=false", "add", "-A")
        _git(folder, "-c", "user.email=ci@example.com", "-c", "user.name=CI",
             "-c", "commit.gpgsign=false", "commit", "-q", "-m", "specs")
    return folder


@pytest.fixture(autouse=True)
def _outside_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)


def test_in_ci_the_commit_is_github_sha_wherever_the_specs_are(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GITHUB_SHA", CI_SHA)
    assert git_commit([str(tmp_path)]) == CI_SHA


def test_outside_ci_the_commit_is_head_of_the_specs_repository_not_of_the_working_folder(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    specs = _repo(tmp_path / "specs-repo")
    other = _repo(tmp_path / "other-repo")
    monkeypatch.chdir(other)
    head = _git(specs, "rev-parse", "HEAD")
    assert head != _git(other, "rev-parse", "HEAD")
    assert git_commit([str(specs / "specs" / "abc.yaml")]) == head
    assert git_commit([str(specs / "specs")]) == head


def test_an_empty_github_sha_falls_back_to_the_specs_repository(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    specs = _repo(tmp_path / "specs-repo")
    monkeypatch.setenv("GITHUB_SHA", "")
    assert git_commit([str(specs / "specs")]) == _git(specs, "rev-parse", "HEAD")


def test_specs_in_no_repository_record_no_commit(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "abc.yaml").write_text("version: 1\n")
    assert git_commit([str(loose / "abc.yaml")]) is None


def test_specs_in_two_repositories_record_no_commit(tmp_path: Path) -> None:
    first, second = _repo(tmp_path / "first"), _repo(tmp_path / "second")
    assert git_commit([str(first / "specs"), str(second / "specs")]) is None


def test_a_repository_without_a_commit_records_none_not_the_word_head(tmp_path: Path) -> None:
    fresh = _repo(tmp_path / "fresh", commit=False)
    assert git_commit([str(fresh / "specs")]) is None


def test_without_git_no_commit_is_recorded_and_nothing_fails(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    specs = _repo(tmp_path / "specs-repo")
    empty = tmp_path / "no-programs"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert git_commit([str(specs / "specs")]) is None


def test_a_git_that_hangs_on_head_costs_apply_its_time_limit_not_the_run(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A git that never answers (a credential prompt, a stuck filesystem) is given up on after
    the limit (10 s; 1 s here): the write goes ahead, recorded without a commit."""
    import time

    from reconciler import apply

    assert apply.GIT_TIMEOUT_SECONDS == 10  # what docs/interrupts.md promises
    monkeypatch.setattr(apply, "GIT_TIMEOUT_SECONDS", 1.0)

    specs = _repo(tmp_path / "specs-repo")
    real_git = shutil.which("git")
    stuck = tmp_path / "stuck-git"
    stuck.mkdir()
    (stuck / "git").write_text(
        "#!/bin/sh\n"
        f'case "$*" in *--show-toplevel*) exec "{real_git}" "$@";; esac\n'
        "exec sleep 60\n"
    )
    (stuck / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{stuck}:{os.environ['PATH']}")
    started = time.monotonic()
    assert git_commit([str(specs / "specs")]) is None
    assert 1 <= time.monotonic() - started < 5  # not the fake git's 60 s
