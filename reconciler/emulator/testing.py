"""Helpers for tests that give the emulator a state or the reconciler a spec (no pytest import
here, and nothing from the CLI: the emulator sits below it; tests/cli_capture.py runs the CLI)."""

from __future__ import annotations

import os
from typing import Any

import yaml

from reconciler.statefile import BillingState, load_state_file


def state_from_yaml(text: str, folder: str) -> BillingState:
    """A BillingState from state-file YAML text (checked as `state load` checks it)."""
    path = os.path.join(folder, "billing-state.yaml")
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
    return load_state_file(path)


def write_spec(folder: str, name: str, spec: dict[str, Any]) -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as out:
        yaml.safe_dump(spec, out, sort_keys=False)
    return path
