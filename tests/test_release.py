"""The release workflow: what runs on a version tag, and its refusals.

The build and smoke steps themselves run in test_wheel.py (one build per test run); here the
cheap parts: the tag check and the release notes, the shape of the publishing jobs, the pins.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import __version__
from tests import release_support
from tests.helpers import REPO

WORKFLOW: dict[str, Any] = yaml.safe_load(release_support.RELEASE.read_text())
PINNED = re.compile(r"^\s*(?:- )?uses: (?P<action>[\w./-]+)@(?P<ref>\S+)(?: # "
                    r"(?P<comment>\S+))?\s*$")


def _tag_step() -> dict[str, Any]:
    (step,) = [s for s in release_support.build_steps() if s.get("id") == "version"]
    return step


def _check_tag(tmp_path: Path, tag: str, release_date: str | None) -> tuple[int, str, Path]:
    checkout = release_support.checkout(tmp_path / "checkout", release_date)
    temp = tmp_path / "temp"
    temp.mkdir()
    runner = release_support.Runner(checkout, temp,
                                    release_support.runner_env(Path(sys.executable).parent, tag))
    result = runner.run(_tag_step())
    return result.returncode, result.stdout + result.stderr, checkout


def test_a_tag_of_this_version_passes_and_its_changelog_section_becomes_the_notes(
    tmp_path: Path,
) -> None:
    code, output, checkout = _check_tag(tmp_path, f"v{__version__}", "2026-12-04")
    assert code == 0, output
    notes = (checkout / "release-notes.md").read_text()
    assert "reconciler init" in notes and "## [" not in notes
    # The notes stop at the next section.
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert notes.strip() in changelog


def test_a_tag_that_is_not_the_version_is_refused(tmp_path: Path) -> None:
    code, output, _ = _check_tag(tmp_path, "v9.9.9", "2026-12-04")
    assert code == 1
    assert f"the tag v9.9.9 is not v{__version__}" in output


def test_a_version_without_a_changelog_section_is_refused(tmp_path: Path) -> None:
    code, output, _ = _check_tag(tmp_path, f"v{__version__}", None)
    assert code == 1
    assert f"CHANGELOG.md has no section '## [{__version__}]'" in output


def test_the_release_runs_on_version_tags_only() -> None:
    assert WORKFLOW[True] == {"push": {"tags": ["v*"]}}  # YAML 1.1 reads the key `on` as True
    assert WORKFLOW["permissions"] == {"contents": "read"}


def test_publishing_uses_trusted_publishing_in_the_pypi_environment() -> None:
    publish = WORKFLOW["jobs"]["publish"]
    assert publish["needs"] == "build"
    assert publish["environment"]["name"] == "pypi"
    # Only the OIDC token: no password, no API token anywhere in the workflow.
    assert publish["permissions"] == {"id-token": "write"}
    (upload,) = [s for s in publish["steps"]
                 if s["uses"].startswith("pypa/gh-action-pypi-publish@")]
    assert "password" not in upload.get("with", {})
    assert "secrets." not in release_support.RELEASE.read_text()


def test_the_github_release_attaches_the_same_files_after_publishing() -> None:
    job = WORKFLOW["jobs"]["github-release"]
    assert job["needs"] == ["build", "publish"]
    assert job["permissions"] == {"contents": "write"}
    script = job["steps"][-1]["run"]
    assert 'gh release create "$TAG" dist/*' in script and "--notes-file release-notes.md" in script
    downloads = [s for j in ("publish", "github-release") for s in WORKFLOW["jobs"][j]["steps"]
                 if s.get("uses", "").startswith("actions/download-artifact@")]
    assert {s["with"]["name"] for s in downloads} == {"release-files"}


def test_every_action_is_pinned_to_a_commit_with_its_version_in_a_comment() -> None:
    lines = [line for line in release_support.RELEASE.read_text().splitlines() if "uses:" in line]
    assert len(lines) >= 6
    for line in lines:
        match = PINNED.match(line)
        assert match, line
        assert re.fullmatch(r"[0-9a-f]{40}", match["ref"]), line
        assert match["comment"] and re.fullmatch(r"v\d+(\.\d+)*", match["comment"]), line


@pytest.mark.parametrize("step", release_support.build_steps(), ids=lambda s: s["name"])
def test_build_steps_run_no_unpinned_installs(step: dict[str, Any]) -> None:
    # The build tools come hash-checked from requirements/release.txt; the one other install is
    # the wheel just built, as a user installs it.
    for line in step["run"].splitlines():
        if "pip" in line and " install" in line:
            assert "--require-hashes" in line or "${wheels[0]}" in line, line
