"""Which files are customer specs: the one definition every command shares.

A spec file is a file whose name ends in ``.yaml`` or ``.yml``, in any case (``contoso.YAML``
too). A symbolic link is a spec file only while its real target stays inside the link's own
folder: a link that leaves it is never read and never written, by any command. Discovery, the
files ``plan --changed-since`` takes from git, ``fmt``, ``adopt``, the selection by customer and
the pre-commit hooks' ``files:`` pattern (``SPEC_FILES_PATTERN``) all follow this module, so no
file can be planned by one of them and unseen by another.
"""

from __future__ import annotations

import os

from reconciler.errors import UsageError

SPEC_SUFFIXES = (".yaml", ".yml")
# The same rule as a regular expression over a repository path, for tools that filter names
# themselves (the pre-commit hooks): Python's syntax, case-insensitive.
SPEC_FILES_PATTERN = r"(?i)\.ya?ml$"

__all__ = [
    "SPEC_FILES_PATTERN", "SPEC_SUFFIXES", "discover", "escape_message", "is_spec_name",
    "is_symlink_escape", "write_target",
]


def is_spec_name(path: str) -> bool:
    """Does the name of ``path`` say it is a spec (``.yaml``/``.yml`` in any case)?"""
    return os.path.basename(path).lower().endswith(SPEC_SUFFIXES)


def is_symlink_escape(path: str) -> bool:
    """Is ``path`` a symbolic link whose real target is outside the link's own folder?"""
    if not os.path.islink(path):
        return False
    target = os.path.realpath(path)
    folder = os.path.realpath(os.path.dirname(path) or ".")
    return os.path.commonpath([folder, target]) != folder


def escape_message(path: str) -> str:
    """Why a spec that is an escaping link is neither read nor written."""
    return f"the spec is a symbolic link to {os.path.realpath(path)}, outside its folder"


def write_target(path: str) -> str:
    """The file to write when rewriting the spec ``path`` in place.

    A link that stays inside its folder is written through (the link stays a link); a link that
    leaves its folder is refused here too, so no caller can write outside the specs by mistake.
    """
    if is_symlink_escape(path):
        raise UsageError(f"{path}: {escape_message(path)}; it is not written")
    return os.path.realpath(path) if os.path.islink(path) else path


def discover(paths: list[str]) -> list[str]:
    """Spec files named by ``paths`` (files, or folders searched for spec files), sorted.

    Folders are walked without following symbolic links to folders, so a link loop cannot trap
    us. A linked file that leaves its folder is listed all the same, so that the command reports
    it as refused instead of passing over it in silence; nothing reads it.
    """
    found: set[str] = set()
    for given in paths:
        if os.path.isdir(given):
            for folder, subfolders, files in os.walk(given, followlinks=False):
                subfolders.sort()
                found.update(os.path.normpath(os.path.join(folder, name)) for name in files
                             if is_spec_name(name))
        elif os.path.exists(given) or os.path.islink(given):
            found.add(os.path.normpath(given))
        else:
            raise UsageError(f"{given}: no such file or folder")
    if not found and paths:
        # A mistyped folder must not pass CI as "no changes".
        raise UsageError(f"no spec files (*.yaml, *.yml) in {', '.join(paths)}")
    return sorted(found)
