"""`reconciler init`: a new specs repository, made from the files the package ships.

Nothing here is a hand-kept copy: the schemas, the demo billing state, the example spec, the
workflows and the pre-commit hooks are the project's own files (see reconciler.packaged). Only
the step that installs the reconciler changes: the project's workflows install it from their
own checkout, a specs repository installs the released version that made it.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconciler import packaged
from reconciler.errors import ReconcilerError

# The project's workflows a specs repository needs; the others test and release the project.
INIT_WORKFLOWS = ("plan.yml", "apply.yml", "drift.yml")
PROJECT_ONLY_WORKFLOWS = frozenset({"ci.yml", "release.yml"})
INSTALL_STEP = "Install pbx-reconciler"

DEMO_STATE = "specs/demo-billing-state.yaml"
# The project's hash-locked runtime dependencies, the ones its own workflows install.
LOCK = "requirements/ci.txt"
CUSTOMERS = "specs/customers"

GITIGNORE = """\
# The reconciler's local files: the embedded database, locks, the audit log, crash logs.
.reconciler/
# Saved plans (`reconciler plan --out plan.json`; the workflows' plan-1.json, applied-plan.json).
plan.json
plan-*.json
applied-plan.json
"""


class InitRefused(ReconcilerError):
    """The folder already holds some of the files ``init`` would write: nothing was written."""


@dataclass(frozen=True)
class NewFile:
    path: str  # relative to the new repository, with '/'
    text: str
    about: str


def scaffold(version: str) -> list[NewFile]:
    """Every file of a new specs repository for pbx-reconciler ``version``, in the order shown."""
    files = [
        NewFile(f"{CUSTOMERS}/{spec.name}", _read(spec), "an example customer spec")
        for spec in sorted((packaged.EXAMPLES / "customers").glob("*.yaml"))
    ]
    files += [
        NewFile(DEMO_STATE, _read(packaged.EXAMPLES / "demo-billing-state.yaml"),
                "the demo billing state for the embedded backend"),
        NewFile("owners.yaml", _read(packaged.PROJECT / "owners.yaml"),
                "the owners map: which file speaks for which customer, who edits it"),
    ]
    files += [
        NewFile(f"schemas/{schema.name}", _read(schema),
                "JSON Schema (editors and CI read it here)")
        for schema in sorted(packaged.SCHEMAS.glob("*.json"))
    ]
    files += [
        NewFile(f".github/workflows/{name}",
                released_workflow(_read(packaged.GITHUB / "workflows" / name), version),
                f"workflow: {_WORKFLOW_ABOUT[name]}")
        for name in INIT_WORKFLOWS
    ]
    files += [
        NewFile(".github/CODEOWNERS", _read(packaged.GITHUB / "CODEOWNERS"),
                "from owners.yaml: reconciler owners --codeowners > .github/CODEOWNERS"),
        NewFile(LOCK, _read(packaged.PROJECT / LOCK),
                "the tool's dependencies, pinned with their hashes"),
        NewFile(".pre-commit-config.yaml", pre_commit_config(version),
                "pre-commit hooks: fmt and validate"),
        NewFile(".gitignore", GITIGNORE, "keeps .reconciler/ and plan.json out of Git"),
    ]
    return files


_WORKFLOW_ABOUT = {
    "plan.yml": "pull requests: validate, plan, comment",
    "apply.yml": "merges to main: apply the plan",
    "drift.yml": "nightly: find drift, propose adopt pull requests",
}


def create(root: Path, files: list[NewFile]) -> None:
    """Write ``files`` under ``root`` (created if missing), or nothing at all.

    Refuses, before writing anything, when any of the paths exists (a file, a folder or a link):
    ``init`` never overwrites. A write that fails midway (or Ctrl-C) removes what this call wrote.
    """
    if root.exists() and not root.is_dir():
        raise InitRefused(f"{root} is not a folder")
    taken = [f.path for f in files if os.path.lexists(root / f.path)]
    if taken:
        raise InitRefused(
            f"{root} already has {', '.join(taken)}: init never overwrites a file, so nothing was "
            "written. Choose an empty folder, or move those files away."
        )
    if not root.exists() and not root.parent.is_dir():
        # A typo in a path is not a request for a new tree: only the last folder is made.
        raise InitRefused(f"the folder {root.parent} does not exist (it is not created)")
    made_dirs: list[Path] = []
    written: list[Path] = []
    try:
        if not root.exists():
            root.mkdir()
            made_dirs.append(root)
        for new in files:
            target = root / new.path
            for folder in reversed(target.parents):
                if not folder.exists():
                    folder.mkdir()
                    made_dirs.append(folder)
            # "x": never replace a file that appeared since the check above.
            with open(target, "x", encoding="utf-8", newline="\n") as out:
                written.append(target)
                out.write(new.text)
    except BaseException as exc:
        # Also on Ctrl-C: a half-made repository would make the next `init` refuse.
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in reversed(made_dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if not isinstance(exc, OSError):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        raise InitRefused(f"cannot write {where}{exc.strerror or exc}; nothing was kept") from None


def released_workflow(text: str, version: str) -> str:
    """The project's workflow ``text`` for a specs repository: each step whose name starts with
    "Install pbx-reconciler" installs release ``version`` from the package index instead of the
    checkout, and is named for it.

    The file is edited as text, so its comments stay; the result is checked as YAML.
    """
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    replaced = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        step = _STEP_NAME.match(line)
        if not step or not step["name"].strip().strip("'\"").startswith(INSTALL_STEP):
            out.append(line)
            continue
        out.append(f"{step['indent']}- name: {INSTALL_STEP} {version}\n")
        key_indent = len(step["indent"]) + 2
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) >= key_indent):
            line = lines[i]
            i += 1
            if _indent(line) != key_indent or not line.lstrip().startswith("run:"):
                out.append(line)
                continue
            out.append(" " * key_indent + "run: |\n")
            out += [" " * (key_indent + 2) + command + "\n"
                    for command in install_script(version).splitlines()]
            replaced += 1
            # Skip the old script (a block scalar is indented deeper than its key).
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > key_indent):
                i += 1
    header = (
        f"# Made by `reconciler init` (pbx-reconciler {version}) from the project's own workflow;\n"
        f"# it installs the released pbx-reconciler {version}. The docs/ pages named below are\n"
        "# pbx-reconciler's documentation.\n"
    )
    result = header + "".join(out)
    _check_released(result, version, replaced)
    return result


def install_script(version: str) -> str:
    """The `run:` script of a specs repository's install step: the dependencies from the
    release's hash-locked requirements (shipped as LOCK), then the release itself alone."""
    return (
        f"python -m pip install --require-hashes -r {LOCK}\n"
        f'python -m pip install --no-deps "pbx-reconciler=={version}"\n'
    )


_STEP_NAME = re.compile(r"^(?P<indent> *)- name:(?P<name>.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _check_released(text: str, version: str, replaced: int) -> None:
    """The edited workflow is valid YAML, every install step installs the release, and nothing
    installs the checkout."""
    workflow: dict[str, Any] = yaml.safe_load(text)
    steps = [step for job in workflow["jobs"].values() for step in job.get("steps", [])]
    installs = [step for step in steps if str(step.get("name", "")).startswith(INSTALL_STEP)]
    from_checkout = [
        step for step in steps
        if re.search(r"pip install[^\n]*(\s-e\s|\s\.(\s|$)|\s\./)", step.get("run", ""))
    ]
    if not installs or replaced != len(installs) or from_checkout or any(
        step.get("run") != install_script(version) for step in installs
    ):
        # The project changed its install step in a way this edit does not know: a packaging bug.
        raise RuntimeError("a shipped workflow's install step could not be adapted to the release")


def pre_commit_config(version: str) -> str:
    """The project's pre-commit hooks (.pre-commit-hooks.yaml) as local hooks of a specs
    repository, each installing release ``version`` into the environment pre-commit makes."""
    hooks: list[dict[str, Any]] = yaml.safe_load(_read(packaged.PROJECT / ".pre-commit-hooks.yaml"))
    local = []
    for hook in hooks:
        entry = {k: v for k, v in hook.items()
                 if k not in ("description", "minimum_pre_commit_version")}
        entry["additional_dependencies"] = [f"pbx-reconciler=={version}"]
        local.append(entry)
    body = yaml.safe_dump({"repos": [{"repo": "local", "hooks": local}]}, sort_keys=False,
                          width=100)
    return (
        "# pre-commit hooks (https://pre-commit.com): `pre-commit install` runs them before each\n"
        f"# commit. Each installs pbx-reconciler {version} from the package index.\n" + body
    )


def _read(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()
