"""Which spec files changed since a git ref (``plan --changed-since REF``).

"Changed" means what the working tree holds now compared with the point where it left
``REF``: commits since then, staged and unstaged edits, and new files git does not
ignore. Comparing with the merge base rather than with ``REF`` itself means that when
``REF`` is a branch that moved on (``origin/main`` after other pull requests merged),
the files changed only on that branch are not taken for changes made here; when ``REF``
is an ancestor of ``HEAD`` (a tag, ``HEAD~3``, the base of a pull request's merge
commit) the two are the same.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.specfiles import is_spec_name

__all__ = ["GitChangesError", "SpecChanges", "changed_spec_files", "repository_of"]


class GitChangesError(ReconcilerError):
    """The changed files cannot be worked out: no git, not a repository, unknown ref."""


class _GitUnusable(GitChangesError):
    """git itself cannot be used (not installed, cannot be started, does not answer): whatever
    the folder is, this is the message."""


@dataclass(frozen=True)
class SpecChanges:
    """Spec files under the given paths, relative to the working directory.

    ``changed``: added, modified or renamed-to; ``deleted``: deleted or renamed-from.
    Both sorted, with ``/`` separators and no ``./`` prefix.
    """

    changed: list[str]
    deleted: list[str]


# How long one git command may take before the run gives up on it (a credential prompt, a stuck
# network filesystem): a plan in CI fails with a message instead of hanging until the job's limit.
GIT_TIMEOUT_SECONDS = 120.0


def _git(args: list[str], cwd: str) -> str:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="surrogateescape",
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _GitUnusable(
            f"git {args[0]} did not answer within {GIT_TIMEOUT_SECONDS:g} s"
        ) from None
    except (FileNotFoundError, NotADirectoryError):
        raise _GitUnusable("git is not installed (needed for --changed-since)") from None
    except OSError as error:
        raise _GitUnusable(f"cannot run git: {error.strerror}") from None
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        message = detail[-1] if detail else f"exit code {result.returncode}"
        raise GitChangesError(f"git {args[0]} failed: {message}")
    return result.stdout


def _toplevel(folder: str, spec_path: str | None = None) -> str:
    try:
        return _git(["rev-parse", "--show-toplevel"], folder).strip()
    except _GitUnusable:
        raise
    except GitChangesError:
        holds = f" (the folder of the spec path {spec_path})" if spec_path is not None else ""
        raise GitChangesError(f"not a git repository: {folder}{holds}") from None


def _nearest_folder(path: str) -> str:
    """``path`` if it is a folder, else its nearest existing ancestor (a deleted spec's folder)."""
    current = os.path.abspath(path)
    if not os.path.isdir(current):
        current = os.path.dirname(current)
    while not os.path.isdir(current) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
    return current


def repository_of(paths: list[str], *, cwd: str | None = None) -> str:
    """The top folder of the one git repository that holds every path of ``paths``.

    The repository is found from the spec paths, not from the working directory: `cd /tmp &&
    reconciler plan --changed-since main /repo/specs` compares within /repo. Paths in several
    repositories are refused: a ref names a commit of one repository.
    """
    workdir = os.path.abspath(cwd or os.getcwd())
    found: dict[str, list[str]] = {}
    toplevels: dict[str, str] = {}  # one git call per folder, not per spec file
    for path in paths or ["."]:
        folder = _nearest_folder(os.path.join(workdir, path))
        if folder not in toplevels:
            toplevels[folder] = _toplevel(folder, path)
        found.setdefault(toplevels[folder], []).append(path)
    if len(found) > 1:
        listing = "; ".join(f"{top}: {', '.join(held)}" for top, held in sorted(found.items()))
        raise GitChangesError(
            f"the spec paths are in {len(found)} git repositories ({listing}); a git ref belongs "
            "to one repository: run one command per repository"
        )
    return next(iter(found))


def _base(ref: str, cwd: str) -> str:
    try:
        commit = _git(
            ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], cwd
        )
    except GitChangesError:
        hint = "in CI, fetch the history: actions/checkout with fetch-depth: 0"
        raise GitChangesError(f"unknown git ref '{ref}' ({hint})") from None
    commit = commit.strip()
    try:
        return _git(["merge-base", commit, "HEAD"], cwd).strip() or commit
    except GitChangesError:
        # No common history (or no HEAD yet): compare with the ref itself.
        return commit


def _parse_name_status(output: str) -> tuple[set[str], set[str]]:
    """Split ``git diff --name-status -z`` output into changed and deleted paths."""
    fields = output.split("\0")
    changed: set[str] = set()
    deleted: set[str] = set()
    index = 0
    while index < len(fields) and fields[index]:
        status = fields[index][0]
        if status in ("R", "C"):
            source, target = fields[index + 1], fields[index + 2]
            if status == "R":
                deleted.add(source)
            changed.add(target)
            index += 3
            continue
        path = fields[index + 1]
        (deleted if status == "D" else changed).add(path)
        index += 2
    return changed, deleted


def _as_given(root_relative: set[str], toplevel: str, given: list[tuple[str, str]]) -> list[str]:
    """Repository paths of spec files, spelt under the spec path (as the user gave it)
    holding them."""
    result = set()
    for path in root_relative:
        if not is_spec_name(path):
            continue
        real = os.path.join(toplevel, path)
        for prefix, spelt in given:
            if real == prefix:
                result.add(Path(os.path.normpath(spelt)).as_posix())
                break
            if real.startswith(prefix.rstrip(os.sep) + os.sep):
                result.add(
                    Path(
                        os.path.normpath(os.path.join(spelt, os.path.relpath(real, prefix)))
                    ).as_posix()
                )
                break
    return sorted(result)


def changed_spec_files(ref: str, paths: list[str], *, cwd: str | None = None) -> SpecChanges:
    """Spec files (``*.yaml``/``*.yml``, any case: see specfiles) under ``paths`` that changed
    since ``ref``.

    ``paths`` are files or folders, relative to ``cwd`` (default: the current
    directory); the results are spelt under the path that holds them, so relative paths give
    relative results. The repository is the one holding ``paths``, wherever ``cwd`` is. A file
    that was renamed counts as deleted under its old name and changed under its new one.
    Raises :class:`GitChangesError` when git is missing, the paths are not in one git
    repository, or ``ref`` names no commit.
    """
    workdir = os.path.realpath(cwd or os.getcwd())
    if not os.path.isdir(workdir):
        # Checked here, or running git there would fail as if git were missing.
        raise GitChangesError(f"not a git repository: {workdir} (no such folder)")
    given = list(paths) or ["."]
    toplevel = repository_of(given, cwd=workdir)
    base = _base(ref, toplevel)
    # Each spec path as the repository sees it (real paths: git reports the top folder resolved).
    real = [(os.path.realpath(os.path.join(workdir, path)), path) for path in given]
    # Pathspecs are taken as literal paths: a folder named "specs[1]" is not a glob.
    pathspecs = [f":(literal){os.path.relpath(prefix, toplevel)}" for prefix, _ in real]
    diff = _git(
        [
            "-c",
            "core.quotepath=off",
            "diff",
            "--name-status",
            "-z",
            "-M",
            "--no-ext-diff",
            base,
            "--",
            *pathspecs,
        ],
        toplevel,
    )
    changed, deleted = _parse_name_status(diff)
    untracked = _git(
        ["ls-files", "--others", "--exclude-standard", "--full-name", "-z", "--", *pathspecs],
        toplevel,
    )
    changed.update(path for path in untracked.split("\0") if path)
    # A path deleted and re-added (e.g. renamed away and a new file put in its place)
    # exists now: it is a change, not a deletion.
    deleted -= changed
    return SpecChanges(
        changed=_as_given(changed, toplevel, real),
        deleted=_as_given(deleted, toplevel, real),
    )
