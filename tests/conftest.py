from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FIXTURES, REPO, Result, run_cli
from tests.pb_stub import Stub

# The wire contract every emulator a test starts speaks unless the test names one. The
# client-driving suites (stories, validation fixtures, fault convergence, the client's own tests)
# run against this: the realistic v3 defaults, where no answer says who blocked an account and the
# client tells its own blocks by the marker in the account's note (docs/portabilling.md, "Who
# blocked an account").
CLIENT_WIRE = "v3"


def pytest_configure(config: pytest.Config) -> None:
    try:
        from reconciler.emulator import profile
    except ImportError:
        return
    profile.DEFAULT_WIRE = CLIENT_WIRE


class Billing:
    """One billing backend for a test: load a state file, run the CLI against it, dump it."""

    kind = "sqlite"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.url = f"sqlite:///{workdir / 'billing.db'}"
        self.env: dict[str, str] = {}

    def load(self, state_file: str | Path) -> None:
        result = run_cli("--backend", self.url, "state", "load", str(state_file))
        assert result.code == 0, result

    def cli(self, *args: str, input: str | None = None) -> Result:
        return run_cli("--backend", self.url, *args, env=self.env, input=input)

    def dump(self) -> dict[str, Any]:
        result = run_cli("--backend", self.url, "state", "dump", "--format", "json")
        assert result.code == 0, result
        return json.loads(result.out)  # type: ignore[no-any-return]

    def account(self, account_id: str) -> dict[str, Any] | None:
        for account in self.dump()["accounts"]:
            if account["id"] == account_id:
                return account  # type: ignore[no-any-return]
        return None

    def close(self) -> None:
        pass


class PortaBillingBilling(Billing):
    """The same, through the PortaBilling backend against the loopback emulator."""

    kind = "portabilling"

    def __init__(self, workdir: Path) -> None:
        from reconciler.emulator import EmulatorServer
        from reconciler.statefile import BillingState

        self.workdir = workdir
        self.server = EmulatorServer(
            BillingState((), (), ()), db_path=str(workdir / "emulator.db"), page_cap=50,
            login="tester", password="s3cret-pass", wire=CLIENT_WIRE,
        )
        self.server.start()
        self.url = self.server.url
        self.env = {"PORTABILLING_LOGIN": "tester", "PORTABILLING_PASSWORD": "s3cret-pass"}

    def load(self, state_file: str | Path) -> None:
        from reconciler.statefile import load_state_file

        self.server.load_state(load_state_file(str(state_file)))

    def dump(self) -> dict[str, Any]:
        from reconciler.statefile import state_to_dict

        return state_to_dict(self.server.dump_state())

    def close(self) -> None:
        self.server.stop()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch working directory with copies of the fixture specs."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(FIXTURES / "specs", tmp_path / "fixtures")
    shutil.copytree(FIXTURES / "dup-customer", tmp_path / "dup-customer")
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    return tmp_path


@pytest.fixture(params=["sqlite", "portabilling"])
def billing(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Billing]:
    """Every end-to-end story runs on both backends."""
    if request.param == "portabilling":
        backend: Billing = PortaBillingBilling(workdir)
    else:
        backend = Billing(workdir)
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture
def sqlite_billing(workdir: Path) -> Billing:
    return Billing(workdir)


def write(path: Path | str, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def env_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "RECONCILER_", "PORTABILLING_")):
            monkeypatch.delenv(name, raising=False)


# PortaBilling stub servers on loopback for the client's tests, each closed after its test.
@pytest.fixture
def stubs() -> Iterator[Callable[..., Stub]]:
    made: list[Stub] = []

    def make(*customers: dict[str, Any], **kwargs: Any) -> Stub:
        made.append(Stub(*customers, **kwargs))
        return made[-1]

    yield make
    for stub in made:
        stub.close()
