"""Installed as users install it: a wheel in a fresh virtual environment, run outside the
repository.

The wheel is built once per run, by the build job of .github/workflows/release.yml run on a copy
of this checkout (tests/release_support.py): the tag check, `python -m build` with the hash-locked
tools, and the smoke test that installs the wheel in a clean virtual environment and runs the
`reconciler init` quick start. The build tools and the dependencies come from the package
registry once and are kept in pytest's cache folder, so later runs build and install without
the network. The test is
skipped only when the registry cannot be reached (the reason is printed); with
RECONCILER_REQUIRE_WHEEL_TEST=1 (set it in CI) an unreachable registry fails it instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler import __version__
from tests import release_support
from tests.helpers import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
WHEELHOUSE = REPO / ".pytest_cache" / "reconciler-wheelhouse"
_UNREACHABLE = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
    r"Network is unreachable|Connection refused|No matching distribution found|"
    r"Could not find a version that satisfies",
)


def _run(*args: str | os.PathLike[str], cwd: Path | None = None,
         timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RECONCILER_", "PORTABILLING_", "GITHUB_"))}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        check=False
    )


def test_every_package_of_the_source_is_in_the_wheel_list() -> None:
    # pyproject lists the packages by name (schemas/, specs/, .github/ and the root's hook file
    # are mapped into data packages), so a new subpackage must be added there or the installed
    # tool would miss it.
    on_disk = {
        ".".join(path.parent.relative_to(REPO).parts)
        for path in (REPO / "reconciler").rglob("__init__.py")
    }
    mapped = PYPROJECT["tool"]["setuptools"]["package-dir"]
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert on_disk | set(mapped) == listed
    assert mapped == {
        "reconciler.schemas": "schemas",
        "reconciler.examples": "specs",
        "reconciler.github": ".github",
        "reconciler.project": ".",
    }


def _registry_problem(output: str) -> None:
    if _UNREACHABLE.search(output):
        reason = "the package registry is unreachable: " + output.strip().splitlines()[-1]
        if os.environ.get("RECONCILER_REQUIRE_WHEEL_TEST") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def _wheelhouse() -> Path:
    """A folder of wheels for the release's build tools (requirements/release.txt, hash-checked)
    and for every dependency, fetched from the registry once: later runs build and install
    without the network."""
    wanted = list(PYPROJECT["project"]["dependencies"])
    tools = (REPO / "requirements" / "release.txt").read_text()
    digest = hashlib.sha256("\n".join([*wanted, tools]).encode()).hexdigest()[:16]
    marker = WHEELHOUSE / ("complete-" + digest)
    if marker.exists():
        return WHEELHOUSE
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    common = ("-q", "--disable-pip-version-check", "--only-binary", ":all:", "-d", WHEELHOUSE)
    for args in (wanted, ["--no-deps", "-r", str(REPO / "requirements" / "release.txt")]):
        fetched = _run(sys.executable, "-m", "pip", "download", *common, *args)
        if fetched.returncode != 0:
            _registry_problem(fetched.stdout + fetched.stderr)
            pytest.fail(f"pip download failed:\n{fetched.stderr}")
    marker.touch()
    return WHEELHOUSE


@dataclass
class Release:
    """What the release workflow's build job left: the files and the smoke test's venv."""

    dist: Path
    reconciler: Path
    smoke: Path
    logs: dict[str, str]


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """The build job of .github/workflows/release.yml, run as on a tag push of this version:
    the one build of the wheel in a test run (the other installed-wheel tests use it)."""
    wheels = _wheelhouse()
    work = tmp_path_factory.mktemp("release")
    checkout = release_support.checkout(work / "checkout")
    runner_venv = work / "runner-python"
    # The runner's Python: a virtual environment of its own for the build tools, with pip
    # borrowed from the Python running the tests (a pip of its own costs many seconds).
    created = _run(sys.executable, "-m", "venv", "--without-pip", "--system-site-packages",
                   runner_venv)
    assert created.returncode == 0, created.stderr
    temp = work / "runner-temp"
    temp.mkdir()
    # The registry is reached only through the wheelhouse: offline, and the same on every run.
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels),
               "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    runner = release_support.Runner(
        checkout, temp, release_support.runner_env(runner_venv / "bin", f"v{__version__}", offline)
    )
    logs = {}
    for step in release_support.build_steps():
        result = runner.run(step)
        logs[step["name"]] = result.stdout + result.stderr
        assert result.returncode == 0, f"{step['name']}:\n{result.stdout}\n{result.stderr}"
    return Release(checkout / "dist", temp / "smoke-venv" / "bin" / "reconciler", temp / "smoke",
                   logs)


@pytest.fixture(scope="module")
def installed(release: Release) -> Path:
    """The `reconciler` script of a fresh virtual environment holding only the built wheel
    and its dependencies."""
    return release.reconciler


def test_the_release_builds_one_sdist_and_one_wheel_of_this_version(release: Release) -> None:
    names = sorted(path.name for path in release.dist.iterdir())
    assert names == [f"pbx_reconciler-{__version__}-py3-none-any.whl",
                     f"pbx_reconciler-{__version__}.tar.gz"]
    with zipfile.ZipFile(release.dist / names[0]) as wheel:
        shipped = set(wheel.namelist())
    for data in ("reconciler/examples/demo-billing-state.yaml",
                 "reconciler/examples/customers/abc.yaml",
                 "reconciler/github/workflows/plan.yml",
                 "reconciler/project/.pre-commit-hooks.yaml",
                 "reconciler/schemas/customer-spec.schema.json", "reconciler/project/owners.yaml",
                 "reconciler/github/CODEOWNERS", "reconciler/project/requirements/ci.txt"):
        assert data in shipped


def test_the_release_smoke_test_ran_the_init_quick_start_from_the_wheel(release: Release) -> None:
    log = release.logs["Install the wheel in a clean virtual environment and run the quick start"]
    assert "Created a specs repository" in log and "Traceback" not in log, log
    assert re.search(r"Plan: [1-9]\d* change\(s\) for [1-9]\d* customer\(s\), 0 error\(s\)", log), (
        log
    )
    demo = release.smoke / "demo"
    assert (demo / ".reconciler" / "billing.db").is_file()
    assert (demo / ".github" / "workflows" / "apply.yml").is_file()
    # The wheel, not this checkout, answered: the smoke venv has no path back here.
    site = _run(release.reconciler.parent / "python", "-c",
                "import reconciler; print(reconciler.__file__)", cwd=release.smoke)
    assert "site-packages" in site.stdout and str(REPO) not in site.stdout, site.stdout


def test_the_installed_wheel_loads_validates_plans_and_exports_outside_the_repository(
    installed: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "site"
    shutil.copytree(REPO / "specs", outside / "specs")
    assert REPO not in outside.parents

    def reconciler(*args: str) -> subprocess.CompletedProcess[str]:
        result = _run(installed, *args, cwd=outside)
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr, (
            result.stderr
        )
        return result

    loaded = reconciler("state", "load", "specs/demo-billing-state.yaml")
    assert loaded.returncode == 0, loaded.stderr
    assert (outside / ".reconciler" / "billing.db").is_file()
    valid = reconciler("validate", "specs/customers/")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert "spec file(s) valid" in valid.stdout

    text = reconciler("plan", "specs/customers/")
    assert text.returncode == 0 and "Plan:" in text.stdout, text.stdout + text.stderr
    as_json = reconciler("plan", "specs/customers/", "--format", "json", "--out", "plan.json")
    assert as_json.returncode == 0, as_json.stderr
    plan = json.loads(as_json.stdout)
    assert plan["summary"]["changes"] > 0 and plan["summary"]["errors"] == 0
    markdown = reconciler("plan", "specs/customers/", "--format", "markdown")
    assert markdown.returncode == 0 and markdown.stdout.startswith("<!-- reconciler:part 1/"), (
        markdown.stdout
    )

    # The schemas came with the package: a saved plan is read back against plan.schema.json.
    applied = reconciler("apply", "--plan", "plan.json")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    customer = str(plan["customers"][0]["customer"])
    exported = reconciler("export", "--customer", customer)
    assert exported.returncode == 0, exported.stderr
    assert f"id: {customer}" in exported.stdout
    again = reconciler("plan", "specs/customers/", "--format", "json")
    assert json.loads(again.stdout)["summary"]["changes"] == 0
