"""Global options after the command: ``plan specs/ --backend URL`` as people type it."""

from __future__ import annotations

GLOBAL_OPTIONS = ("--backend", "--lock-timeout", "--parallelism", "--owners")
GLOBAL_FLAGS = ("--require-owners",)


def global_options_first(argv: list[str], commands: set[str]) -> list[str]:
    """``plan specs/ --backend URL`` as ``--backend URL plan specs/``: the global options (each
    with its value) and flags that follow the command are moved before it, up to a ``--``."""
    start = next((i for i, arg in enumerate(argv) if arg in commands), None)
    if start is None:
        return argv
    moved: list[str] = []
    rest: list[str] = []
    tail = argv[start + 1 :]
    index = 0
    while index < len(tail):
        arg = tail[index]
        if arg == "--":
            rest.extend(tail[index:])
            break
        if arg in GLOBAL_FLAGS:
            moved.append(arg)
            index += 1
            continue
        if arg in GLOBAL_OPTIONS and index + 1 < len(tail):
            moved.extend(tail[index : index + 2])
            index += 2
            continue
        if arg.startswith(tuple(f"{name}=" for name in GLOBAL_OPTIONS)):
            moved.append(arg)
        else:
            rest.append(arg)
        index += 1
    return argv[:start] + moved + argv[start : start + 1] + rest
