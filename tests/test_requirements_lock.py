"""The hash-locked requirements the workflows install from match pyproject.toml.

requirements/ci.txt (the workflows) and requirements/test.txt (this project's CI) are generated
from pyproject.toml with hashes (docs/ci.md, "Installing the tool in CI"); every package in them
is pinned with `==` and carries at least one sha256 hash, and every dependency pyproject.toml
declares (its build requirement too) is pinned to a version its specifier accepts. A dependency
added to pyproject.toml without regenerating the lock fails here.
"""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import REPO

LOCKS = {
    "ci.txt": [],
    "test.txt": ["test", "lint"],
}
ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s\\;]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def parse_lock(text: str) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes); raises AssertionError on an entry that is not pinned."""
    entries: dict[str, tuple[str, int]] = {}
    logical = re.sub(r"\\\n", " ", text)
    for line in logical.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = ENTRY.match(line)
        assert match, f"not pinned with ==: {line[:80]}"
        hashes = HASH.findall(line)
        assert hashes, f"{match['name']} has no sha256 hash"
        entries[canonicalize_name(match["name"])] = (match["version"], len(hashes))
    return entries


def _declared(extras: list[str]) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = [Requirement(text) for text in project["project"]["dependencies"]]
    for extra in extras:
        wanted += [Requirement(text) for text in project["project"]["optional-dependencies"][extra]]
    wanted += [Requirement(text) for text in project["build-system"]["requires"]]
    return wanted


@pytest.mark.parametrize("lock, extras", LOCKS.items())
def test_the_lock_pins_every_declared_dependency_with_hashes(lock: str, extras: list[str]) -> None:
    locked = parse_lock((REPO / "requirements" / lock).read_text())
    for requirement in _declared(extras):
        name = canonicalize_name(requirement.name)
        assert name in locked, (
            f"{requirement.name} (pyproject.toml) is missing from requirements/{lock}"
        )
        version, _ = locked[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements/{lock} pins {requirement.name}=={version}, which pyproject.toml's "
            f"'{requirement}' does not accept: regenerate the lock (docs/ci.md)"
        )


def test_the_ci_lock_holds_no_test_or_lint_tool() -> None:
    locked = parse_lock((REPO / "requirements" / "ci.txt").read_text())
    assert not {"pytest", "hypothesis", "ruff", "mypy"} & set(locked)


def test_the_check_catches_a_missing_hash_and_an_unpinned_entry() -> None:
    with pytest.raises(AssertionError, match="has no sha256 hash"):
        parse_lock("click==8.1.7\n")
    with pytest.raises(AssertionError, match="not pinned"):
        parse_lock("click>=8.1 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    assert parse_lock("click==8.1.7 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via x\n") == {
        "click": ("8.1.7", 1)
    }
