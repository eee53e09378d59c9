"""Bad input: a located message and exit 1, never a traceback, and nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Billing, write
from tests.helpers import FIXTURES, all_problems

CASES = {
    "malformed": ("version: 1\ncustomer:\n  id: 100\n  name: [Acme\n", "yaml_syntax", 5),
    "duplicate-key": ("version: 1\ncustomer: {id: 100, name: Acme}\n"
                      "customer: {id: 100, name: Acme}\n", "duplicate_key", 3),
    "python-tag": ("version: 1\ncustomer: !!python/object:os.system {id: 100}\n", "yaml_refused",
                   2),
    "list": ("- version: 1\n- customer: 100\n", "schema", 1),
    "empty": ("", "schema", None),
    "comment-only": ("# nothing here\n", "schema", None),
    "tabs": ("version: 1\ncustomer:\n\tid: 100\n", "yaml_syntax", 3),
    "scalar": ("just text\n", "schema", 1),
    "two-documents": ("version: 1\n---\nversion: 1\n", "yaml_refused", 3),
    "not-utf8": (b"version: 1\ncustomer: {id: 100, name: \xff\xfe}\n", "yaml_syntax", None),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("command", ["plan", "validate", "apply"])
def test_bad_spec_is_located_and_exits_1(sqlite_billing: Billing, workdir: Path, name: str,
                                         command: str) -> None:
    sqlite_billing.load(FIXTURES / "state.yaml")
    text, code, line = CASES[name]
    spec = workdir / f"bad-{name}.yaml"
    spec.write_bytes(text if isinstance(text, bytes) else text.encode())
    before = sqlite_billing.dump()
    args = [command, str(spec)] + (["--auto-approve"] if command == "apply" else [])
    result = sqlite_billing.cli(*args)
    assert result.code == 1, result
    assert "Traceback" not in result.out + result.err
    shown = result.out + result.err
    assert f"error[{code}]" in shown, shown
    where = f"{spec}:{line}:" if line else str(spec)
    assert where in shown, shown
    assert sqlite_billing.dump() == before


def test_offline_validation_needs_no_database(workdir: Path) -> None:
    from tests.helpers import run_cli

    ok = run_cli("validate", "--offline", "specs/customers")
    assert ok.code == 0, ok
    assert "3 spec file(s) valid" in ok.out
    bad = run_cli("validate", "--offline", "fixtures/duplicate-extension.yaml", "--format", "json")
    assert bad.code == 1
    assert [p["code"] for p in all_problems(bad.json)] == ["duplicate_extension"]


def test_missing_database_is_an_error_not_an_empty_database(workdir: Path) -> None:
    from tests.helpers import run_cli

    result = run_cli("--backend", "sqlite:///nowhere/billing.db", "plan", "specs/customers")
    assert result.code == 1
    assert "no billing database" in result.err and "state load" in result.err
    assert not Path("nowhere/billing.db").exists()


def test_default_backend_is_the_embedded_database_in_the_working_directory(workdir: Path) -> None:
    from tests.helpers import run_cli

    assert run_cli("state", "load", "specs/demo-billing-state.yaml").code == 0
    assert Path(".reconciler/billing.db").is_file()
    assert run_cli("plan", "specs/customers", "--detailed-exitcode").code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("plan",), "Missing argument 'PATHS...'"),
        (("validate", "--offline", "no-such-dir"), "no-such-dir: no such file or folder"),
        (("--backend", "ftp://x", "plan", "specs"),
         "unknown backend 'ftp://x': use sqlite:///PATH or portabilling+https://HOST[:PORT]"),
        (("frobnicate",), "No such command 'frobnicate'"),
        (("plan", "specs", "--format", "yaml"), "Invalid value for '--format'"),
    ],
    ids=["missing-paths", "missing-folder", "unknown-backend", "unknown-command",
         "bad-option-value"],
)
def test_usage_errors_exit_1_with_a_message(workdir: Path, args: tuple[str, ...],
                                            message: str) -> None:
    from tests.helpers import run_cli

    result = run_cli(*args)
    assert result.code == 1, result  # never click's 2: that means "changes present"
    assert message in result.err, result
    assert result.out == "" and "Traceback" not in result.err


def test_bad_state_file_is_located_and_loads_nothing(workdir: Path) -> None:
    from tests.helpers import run_cli

    assert run_cli("state", "load", "specs/demo-billing-state.yaml").code == 0
    bad = write(workdir / "bad-state.yaml",
                "products:\n  - {id: 1, name: X, type: main}\ncustomers:\n  - {id: 1, name: C, "
                "agreement: [{product: Nope, quantity: 1}]}\n")
    result = run_cli("state", "load", str(bad))
    assert result.code == 1
    assert f"{bad}:4:" in result.err and "unknown_product" in result.err
    dumped = run_cli("state", "dump", "--format", "json")
    assert len(dumped.json["customers"]) == 3  # the old state is intact


def test_state_dump_loads_back_to_the_same_state(workdir: Path) -> None:
    from tests.helpers import run_cli

    assert run_cli("state", "load", "specs/demo-billing-state.yaml").code == 0
    first = run_cli("state", "dump")
    Path("dumped.yaml").write_text(first.out)
    assert run_cli("--backend", "sqlite:///copy.db", "state", "load", "dumped.yaml").code == 0
    second = run_cli("--backend", "sqlite:///copy.db", "state", "dump")
    assert second.out == first.out
    assert "status: open" in first.out and "blocked_by: admin" in first.out


def test_portabilling_credentials_are_needed_to_plan_but_not_to_read_history(workdir: Path) -> None:
    from tests.helpers import run_cli

    url = "portabilling+http://127.0.0.1:9"
    blank = {"PORTABILLING_LOGIN": None, "PORTABILLING_PASSWORD": None, "PORTABILLING_TOKEN": None}
    history = run_cli("--backend", url, "history", env=blank)
    assert history.code == 0 and "No changes applied yet." in history.out
    plan = run_cli("--backend", url, "plan", "specs/customers", env=blank)
    assert plan.code == 1
    assert "PORTABILLING_LOGIN" in plan.err and "Traceback" not in plan.err


def test_a_folder_without_spec_files_is_an_error_not_an_empty_plan(workdir: Path) -> None:
    from tests.helpers import run_cli

    (workdir / "empty").mkdir()
    result = run_cli("validate", "--offline", "empty")
    assert result.code == 1 and "no spec files (*.yaml, *.yml) in empty" in result.err
