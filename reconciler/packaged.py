"""Files the package ships besides its code, and the `$schema` comments that point at them.

A wheel carries the repository's own files as package data (pyproject.toml maps the folders):
``schemas/`` as ``reconciler/schemas``, ``specs/`` (the demo billing state and an example spec)
as ``reconciler/examples``, ``.github/`` (the workflows, CODEOWNERS) as ``reconciler/github``
and the repository root's ``.pre-commit-hooks.yaml`` and ``owners.yaml`` as
``reconciler/project``. In a source checkout
(an editable install) the same files are read where they are, so there is one copy of each.
"""

from __future__ import annotations

import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_SOURCE_ROOT = _HERE.parent


def _packaged(package_dir: str, source_dir: str) -> Path:
    installed = _HERE / package_dir
    return installed if installed.is_dir() else _SOURCE_ROOT / source_dir


SCHEMAS = _packaged("schemas", "schemas")
EXAMPLES = _packaged("examples", "specs")
GITHUB = _packaged("github", ".github")
PROJECT = _packaged("project", ".")

CUSTOMER_SCHEMA = "customer-spec.schema.json"
SCHEMA_COMMENT_PREFIX = "# yaml-language-server: $schema="


def nearest_schema(folder: Path, name: str = CUSTOMER_SCHEMA) -> str | None:
    """The path, relative to ``folder``, of ``schemas/NAME`` in ``folder`` or the nearest folder
    above it that has one (a specs repository made by ``reconciler init`` carries a copy); None
    when there is none. Relative, so that editors resolve it offline wherever the repository is
    cloned."""
    start = folder.resolve()
    for candidate in (start, *start.parents):
        schema = candidate / "schemas" / name
        if schema.is_file():
            return Path(os.path.relpath(schema, start)).as_posix()
    return None


def schema_comment(folder: Path, name: str = CUSTOMER_SCHEMA) -> str | None:
    """The ``yaml-language-server`` comment line for a file written in ``folder``, or None."""
    relative = nearest_schema(folder, name)
    return None if relative is None else f"{SCHEMA_COMMENT_PREFIX}{relative}\n"
