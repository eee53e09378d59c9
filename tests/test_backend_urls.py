"""Backend URLs read in one place, and what each kind of backend says it can do."""

from __future__ import annotations

import os
from inspect import getattr_static
from pathlib import Path

import pytest

from reconciler.backends import (
    KINDS,
    PORTABILLING,
    SQLITE,
    Backend,
    BackendKind,
    Capabilities,
    parse_backend_url,
    resolve_backend_url,
)
from reconciler.backends.portabilling.backend import PortaBillingBackend
from reconciler.backends.sqlite import SqliteBackend
from reconciler.errors import UsageError
from tests.helpers import REPO, run_cli

UNKNOWN = "unknown backend 'ftp://x': use sqlite:///PATH or portabilling+https://HOST[:PORT]"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_each_scheme_names_its_backend_and_location() -> None:
    relative = parse_backend_url("sqlite:///data/billing.db")
    assert (relative.kind, relative.path) == (SQLITE, "data/billing.db")
    assert relative.backend_class() is SqliteBackend
    assert parse_backend_url("sqlite:////srv/billing.db").path == "/srv/billing.db"
    for url in ("portabilling+https://billing.example.com:8443/", "portabilling+http://127.0.0.1:9"):
        assert parse_backend_url(url).backend_class() is PortaBillingBackend


def test_two_spellings_of_one_database_resolve_alike_and_a_server_loses_its_slash(
    tmp_path: Path,
) -> None:
    assert resolve_backend_url("sqlite:///billing.db") == resolve_backend_url(
        f"sqlite:///{os.path.join('.', 'sub', '..', 'billing.db')}"
    )
    assert resolve_backend_url("sqlite:///billing.db") == f"sqlite:///{tmp_path / 'billing.db'}"
    assert (
        resolve_backend_url("portabilling+https://billing.example.com/")
        == "portabilling+https://billing.example.com"
    )
    # A saved plan may name anything: its URL resolves without an error, and matches nothing.
    assert resolve_backend_url("ftp://x/") == "ftp://x"


@pytest.mark.parametrize("url", ["ftp://x", "sqlite://x", "SQLITE:///x", "portabilling://h"])
def test_a_url_naming_no_backend_is_refused_naming_the_forms(url: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_backend_url(url)
    assert str(caught.value) == UNKNOWN.replace("'ftp://x'", repr(url))


def test_each_backend_declares_what_it_can() -> None:
    assert SqliteBackend.capabilities == Capabilities(transactions=True, state_files=True)
    assert PortaBillingBackend.capabilities == Capabilities(
        concurrent_reads=True, diagnostics=True
    )
    assert parse_backend_url("portabilling+https://h").capabilities.diagnostics
    assert PORTABILLING.backend_class().description == "a PortaBilling server"


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_what_a_backend_declares_is_what_it_implements(kind: BackendKind) -> None:
    backend_class = kind.backend_class()
    declared = backend_class.capabilities

    def overrides(*names: str) -> bool:
        return all(getattr_static(backend_class, n) is not getattr_static(Backend, n)
                   for n in names)

    assert declared.concurrent_reads == overrides("read_customers")
    assert declared.state_files == overrides("load_state", "dump_state")
    assert declared.diagnostics == overrides("diagnose")
    assert backend_class.description


def test_state_commands_ask_the_backend_before_opening_it() -> None:
    # No credentials are set: the refusal comes from what the backend can do, before any login.
    blank = {"PORTABILLING_LOGIN": None, "PORTABILLING_PASSWORD": None, "PORTABILLING_TOKEN": None}
    state_file = str(REPO / "specs" / "demo-billing-state.yaml")
    for args in (("state", "dump"), ("state", "load", state_file)):
        result = run_cli("--backend", "portabilling+http://127.0.0.1:9", *args, env=blank)
        assert result.code == 1, result
        assert "`state` works on the embedded sqlite backend only" in result.err
        assert "Traceback" not in result.err
    result = run_cli("--backend", "ftp://x", "state", "dump")
    assert result.code == 1 and UNKNOWN in result.err


def test_doctor_on_a_url_naming_no_backend_says_so() -> None:
    result = run_cli("--backend", "ftp://x", "doctor", "--format", "json")
    assert result.code == 1
    assert result.json["checks"] == [{"name": "backend", "status": "fail", "detail": UNKNOWN}]
