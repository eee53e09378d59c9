"""The owners map: a spec speaks only for the customer bound to its file, on every command, and
no output of any command tells a word billing holds about a customer the spec may not speak for."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Billing, write
from tests.helpers import FIXTURES, REPO, run_cli

# Billing (tests/fixtures/state.yaml): customer 100 "Acme" and customer 200 "Beta", whose only
# account is ph200x1 "Carol". Acme's editors write own/acme.yaml; Beta's file is own/beta.yaml.
MAP = """\
version: 1
provider: ["@example-provider/pbx-operations"]
folders: [own]
customers:
  - id: 100
    file: own/acme.yaml
    editors: ["@acme/pbx-admins"]
  - id: 200
    file: own/beta.yaml
    editors: ["@beta/it", "@example-provider/pbx-operations"]
"""

ACME = """\
version: 1
customer:
  id: 100
  name: Acme
extensions:
  - {extension: "1", name: Alice, product: Cloud PBX service, addons: [Call recording], dids: ["15550000001"]}
  - {extension: "5", name: Eve, product: Cloud PBX service}
"""  # noqa: E501 (the spec as a user writes it; problems point at its lines)

# Acme's file, edited to speak for Beta, with a guessed name and prune on.
HOSTILE = """\
version: 1
customer:
  id: 200
  name: Guessed Name
prune: true
extensions:
  - {extension: "7", name: Mallory, product: Cloud PBX service}
"""

# What billing holds about Beta: none of it may appear in any output.
BETA_SECRETS = ("Beta", "Carol", "ph200x1", "ph200")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_nothing_of_beta(text: str) -> None:
    for secret in BETA_SECRETS:
        assert secret not in text, f"{secret!r} leaked:\n{text}"


@pytest.fixture
def owned(billing: Billing) -> Billing:
    billing.load(FIXTURES / "state.yaml")
    write(billing.workdir / "owners.yaml", MAP)
    write(billing.workdir / "own" / "acme.yaml", HOSTILE)
    return billing


@pytest.mark.parametrize(
    "args",
    [
        ("validate", "own"),
        ("validate", "own", "--format", "json"),
        ("validate", "--offline", "own"),
        ("plan", "own"),
        ("plan", "own", "--format", "json"),
        ("plan", "own", "--format", "markdown"),
        ("plan", "own/acme.yaml", "--detailed-exitcode"),
        ("plan", "own", "--customer", "200"),
        ("apply", "own", "--auto-approve", "--force"),
        ("adopt", "own"),
        ("adopt", "own", "--format", "json"),
        ("adopt", "own", "--customer", "200"),
    ],
    ids=lambda args: " ".join(args),
)
def test_a_spec_claiming_another_customer_reveals_nothing_and_changes_nothing(
    owned: Billing, args: tuple[str, ...]
) -> None:
    before_billing = owned.dump()
    before_spec = _digest(owned.workdir / "own" / "acme.yaml")
    result = owned.cli(*args)
    assert result.code == 1, result
    _assert_nothing_of_beta(result.out + result.err)
    assert "customer_not_owned" in result.out + result.err
    assert ("this file speaks for customer 100 in the owners map owners.yaml, not for customer 200 "
            "(customer 200's file is own/beta.yaml)") in result.out + result.err
    assert owned.dump() == before_billing
    assert _digest(owned.workdir / "own" / "acme.yaml") == before_spec


def test_plan_changed_since_holds_a_changed_file_to_its_customer(owned: Billing) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    workdir = owned.workdir
    write(workdir / "own" / "acme.yaml", ACME)
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "ci@example.com"],
                 ["config", "user.name", "CI"], ["add", "own", "owners.yaml"],
                 ["-c", "commit.gpgsign=false", "commit", "-q", "-m", "base"]):
        subprocess.run(["git", *args], cwd=workdir, check=True, capture_output=True)
    write(workdir / "own" / "acme.yaml", HOSTILE)
    write(workdir / "own" / "beta.YAML", HOSTILE)  # a new file, in upper case: not listed either
    before = owned.dump()
    result = owned.cli("plan", "--changed-since", "HEAD", "own", "--format", "json")
    assert result.code == 1, result
    assert [(p["code"], p["file"]) for p in result.json["errors"]] == [
        ("customer_not_owned", "own/acme.yaml"), ("customer_not_owned", "own/beta.YAML")]
    assert result.json["customers"] == []
    _assert_nothing_of_beta(result.out + result.err)
    assert owned.dump() == before


def test_the_problem_points_at_customer_id_and_the_customer_is_not_planned(owned: Billing) -> None:
    result = owned.cli("plan", "own", "--format", "json")
    plan = result.json
    assert plan["customers"] == []
    assert plan["summary"]["changes"] == 0
    [problem] = plan["errors"]
    assert (problem["code"], problem["file"], problem["line"], problem["column"]) == (
        "customer_not_owned", "own/acme.yaml", 3, 7)


def test_annotations_in_ci_reveal_nothing_either(owned: Billing) -> None:
    result = run_cli("--backend", owned.url, "plan", "own", "--format", "markdown",
                     env={**owned.env, "GITHUB_ACTIONS": "true"})
    assert result.code == 1
    assert "::error file=own/acme.yaml,line=3" in result.err
    _assert_nothing_of_beta(result.out + result.err)


def test_an_id_billing_does_not_know_is_not_owned_rather_than_unknown(owned: Billing) -> None:
    write(owned.workdir / "own" / "acme.yaml", HOSTILE.replace("id: 200", "id: 60001"))
    result = owned.cli("plan", "own", "--format", "json")
    assert result.code == 1
    assert [p["code"] for p in result.json["errors"]] == ["customer_not_owned"]
    assert "unknown_customer" not in result.out + result.err


def test_the_bound_customer_is_planned_as_before(owned: Billing) -> None:
    write(owned.workdir / "own" / "acme.yaml", ACME)
    result = owned.cli("plan", "own", "--format", "json", "--detailed-exitcode")
    assert result.code == 2, result
    [customer] = result.json["customers"]
    assert (customer["customer"], customer["name"]) == (100, "Acme")
    assert [c["account"] for c in customer["changes"]] == ["ph100x5"]
    assert owned.cli("apply", "own", "--auto-approve").code == 0
    assert owned.account("ph100x5") is not None


def test_a_file_the_map_does_not_list_is_not_owned(owned: Billing) -> None:
    write(owned.workdir / "own" / "acme.yaml", ACME)
    write(owned.workdir / "own" / "new.yaml",
          ACME.replace("id: 100", "id: 200").replace("Acme", "Beta"))
    result = owned.cli("plan", "own", "--format", "json")
    assert result.code == 1
    [problem] = result.json["errors"]
    assert problem["code"] == "customer_not_owned" and problem["file"] == "own/new.yaml"
    assert problem["message"] == ("this file is not in the owners map owners.yaml, which binds "
                                  "each spec file to its customer: nothing is planned for it until "
                                  "the provider adds it there")
    # Acme's own file is planned all the same: one bad file does not stop the others.
    assert [c["customer"] for c in result.json["customers"]] == [100]
    # A link to Acme's file under another name is another file: not listed, not owned.
    (owned.workdir / "own" / "new.yaml").unlink()
    (owned.workdir / "own" / "alias.yaml").symlink_to("acme.yaml")
    result = owned.cli("plan", "own", "--format", "json")
    errors = [(p["code"], p["file"]) for p in result.json["errors"]]
    assert errors == [("customer_not_owned", "own/alias.yaml")]


def test_a_claim_does_not_block_the_real_owner(owned: Billing) -> None:
    """The hostile file is no duplicate of Beta's own file: Beta is still planned."""
    write(owned.workdir / "own" / "beta.yaml", "version: 1\ncustomer: {id: 200, name: Beta}\n"
          "extensions:\n  - {extension: '1', name: Carol, product: Cloud PBX service}\n")
    result = owned.cli("plan", "own", "--format", "json")
    plan = result.json
    assert [c["customer"] for c in plan["customers"]] == [200]
    assert not plan["customers"][0]["errors"]
    assert [p["code"] for p in plan["errors"]] == ["customer_not_owned"]


def test_doctor_refuses_a_spec_not_bound_to_its_customer(owned: Billing) -> None:
    result = owned.cli("doctor", "own")
    assert result.code == 1
    assert "error[customer_not_owned] own/acme.yaml:3:7" in result.err
    _assert_nothing_of_beta(result.out + result.err)


def test_a_saved_plan_is_held_to_the_map_of_the_run_that_applies_it(owned: Billing) -> None:
    (owned.workdir / "owners.yaml").unlink()  # planned where no map was found
    write(owned.workdir / "own" / "acme.yaml", ACME)
    assert owned.cli("plan", "own", "--out", "plan.json").code == 0
    before = owned.dump()
    write(owned.workdir / "owners.yaml", MAP.replace("id: 100", "id: 300"))
    result = owned.cli("apply", "--plan", "plan.json")
    assert result.code == 1, result
    assert "customer_not_owned" in result.out + result.err
    assert owned.dump() == before


def test_a_spec_outside_the_maps_folders_is_judged_only_when_a_map_is_required(
    owned: Billing,
) -> None:
    write(owned.workdir / "elsewhere" / "beta.yaml", HOSTILE)
    assert owned.cli("validate", "--offline", "elsewhere").code == 0
    result = owned.cli("--require-owners", "validate", "--offline", "elsewhere")
    assert result.code == 1
    assert "this file is outside the folders the owners map owners.yaml governs (own)" in result.out


# ---- finding the map -----------------------------------------------------------------------------


def test_require_owners_without_a_map_is_an_error(billing: Billing) -> None:
    billing.load(FIXTURES / "state.yaml")
    write(billing.workdir / "own" / "acme.yaml", ACME)
    assert billing.cli("plan", "own").code == 0  # no map, none required: as before
    for args, env in ((("plan", "own"), {"RECONCILER_REQUIRE_OWNERS": "1"}),
                      (("plan", "own", "--require-owners"), {}),
                      (("validate", "--offline", "own"), {"RECONCILER_REQUIRE_OWNERS": "true"}),
                      (("apply", "own", "--auto-approve"), {"RECONCILER_REQUIRE_OWNERS": "1"})):
        result = run_cli("--backend", billing.url, *args, env={**billing.env, **env})
        assert result.code == 1, result
        assert "no owners map:" in result.err and "owners.yaml does not exist" in result.err
        assert "RECONCILER_REQUIRE_OWNERS requires one" in result.err
        assert "Traceback" not in result.err
    assert billing.account("ph100x5") is None


def test_an_owners_map_named_by_the_environment_judges_the_checkout(
    sqlite_billing: Billing, tmp_path: Path
) -> None:
    """CI gives the base branch's map, kept outside the checkout: its paths are the checkout's."""
    sqlite_billing.load(FIXTURES / "state.yaml")
    write(sqlite_billing.workdir / "own" / "acme.yaml", HOSTILE)
    base = write(tmp_path / "base-branch" / "owners.yaml", MAP)
    env = {"RECONCILER_OWNERS": str(base), "RECONCILER_REQUIRE_OWNERS": "1"}
    result = run_cli("--backend", sqlite_billing.url, "plan", "own", env=env)
    assert result.code == 1
    assert "customer_not_owned" in result.out
    _assert_nothing_of_beta(result.out + result.err)
    # The checkout's own owners.yaml (which the pull request may have edited) is not read.
    write(sqlite_billing.workdir / "owners.yaml", MAP.replace("id: 100", "id: 200", 1).replace(
        "id: 200\n    file: own/beta", "id: 100\n    file: own/beta"))
    assert run_cli("--backend", sqlite_billing.url, "plan", "own", env=env).code == 1
    # (That edited map, read by default, would let the file speak for Beta.)
    assert "customer_not_owned" not in sqlite_billing.cli("plan", "own").out
    # The same with the option, after the command.
    result = sqlite_billing.cli("plan", "own", "--owners", str(base))
    assert result.code == 1 and "customer_not_owned" in result.out
    missing = sqlite_billing.cli("plan", "own", "--owners", str(tmp_path / "nope.yaml"))
    assert missing.code == 1
    assert (
        f"the owners map {tmp_path / 'nope.yaml'} (--owners / RECONCILER_OWNERS) does not exist"
        in missing.err
    )


def test_the_map_is_found_at_the_git_top_level(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    write(tmp_path / "owners.yaml", MAP)
    write(tmp_path / "own" / "acme.yaml", HOSTILE)
    monkeypatch.chdir(tmp_path / "own")
    result = run_cli("validate", "--offline", "acme.yaml")
    assert result.code == 1
    assert (
        "error[customer_not_owned] acme.yaml:3:7: this file speaks for customer 100" in result.out
    )
    monkeypatch.chdir(tmp_path.parent)  # from outside the repository, by path
    result = run_cli("validate", "--offline", str(tmp_path / "own"))
    assert result.code == 1 and "customer_not_owned" in result.out


# ---- a broken map --------------------------------------------------------------------------------


BROKEN_MAPS = {
    "duplicate id": (
        MAP.replace("id: 200", "id: 100"), 8,
        "customer 100 is listed twice (first at line 5); a customer has one spec file"),
    "duplicate file": (
        MAP.replace("file: own/beta.yaml", "file: own/./acme.yaml"), 9,
        "own/acme.yaml is listed twice (first at line 5); a spec file speaks for one customer"),
    "unknown key": (MAP.replace("    editors: [\"@acme", "    editor: [\"@acme"), 7,
                    "unknown key 'editor'"),
    "not a spec file": (MAP.replace("own/beta.yaml", "own/beta.json"), 9, "'own/beta.json'"),
    "leaves the repository": (MAP.replace("own/beta.yaml", "own/../../beta.yaml"), 9,
                              "leaves the repository"),
    "outside its folders": (MAP.replace("own/beta.yaml", "other/beta.yaml"), 9,
                            "other/beta.yaml is outside the folders this map governs (own)"),
    "duplicate key": (MAP.replace("folders: [own]", "folders: [own]\nfolders: [own]"), 4,
                      "appears twice"),
    "syntax": (MAP.replace("  - id: 200", "  - id: 200\n   file: [x"), 9, "invalid YAML"),
    "bad editor": (MAP.replace("@beta/it", "beta it"), 10, "'beta it'"),
}


@pytest.mark.parametrize("case", list(BROKEN_MAPS))
def test_a_broken_map_is_one_clear_error_with_its_line(sqlite_billing: Billing, case: str) -> None:
    text, line, words = BROKEN_MAPS[case]
    sqlite_billing.load(FIXTURES / "state.yaml")
    write(sqlite_billing.workdir / "owners.yaml", text)
    write(sqlite_billing.workdir / "own" / "acme.yaml", ACME)
    for args in (("plan", "own"), ("validate", "--offline", "own"), ("owners", "--codeowners")):
        result = sqlite_billing.cli(*args)
        assert result.code == 1, result
        assert "Traceback" not in result.err and result.out == ""
        assert "owners.yaml: the owners map is not" in result.err
        assert f"owners.yaml:{line}:" in result.err, result.err
        assert words in result.err


# ---- CODEOWNERS ----------------------------------------------------------------------------------


CODEOWNERS = """\
# Generated from owners.yaml by `reconciler owners --codeowners`: change owners.yaml, not
# this file, then run `reconciler owners --codeowners > .github/CODEOWNERS`.
# The last matching pattern wins.

# The provider owns everything not listed below.
* @example-provider/pbx-operations

# Each customer's spec file: the customer's editors and the provider.
/own/acme.yaml @acme/pbx-admins @example-provider/pbx-operations
/own/beta.yaml @beta/it @example-provider/pbx-operations

# The provider alone, last, so that no pattern above can hand these to anyone else.
/owners.yaml @example-provider/pbx-operations
/.github/ @example-provider/pbx-operations
/schemas/ @example-provider/pbx-operations
"""


def test_codeowners_lines_follow_the_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # The entry order of the map does not matter: files are sorted.
    swapped = MAP.split("customers:\n")[0] + "customers:\n" + "\n".join(
        reversed(["  - id: 100" + MAP.split("  - id: 100")[1].split("  - id: 200")[0].rstrip("\n"),
                  "  - id: 200" + MAP.split("  - id: 200")[1].rstrip("\n")])) + "\n"
    for text in (MAP, swapped):
        write(tmp_path / "owners.yaml", text)
        result = run_cli("owners", "--codeowners")
        assert result.code == 0, result
        assert result.out == CODEOWNERS


def test_codeowners_check_passes_fails_with_a_diff_and_names_a_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "owners.yaml", MAP)
    missing = run_cli("owners", "--codeowners", "--check")
    assert missing.code == 1
    assert (
        "CODEOWNERS does not exist; "
        "write it with: reconciler owners --codeowners > .github/CODEOWNERS"
        in missing.err
    )
    write(tmp_path / ".github" / "CODEOWNERS", CODEOWNERS)
    passed = run_cli("owners", "--codeowners", "--check")
    assert passed.code == 0, passed
    assert passed.out == ""
    # A customer's team adding itself to another customer's file is caught.
    write(tmp_path / ".github" / "CODEOWNERS", CODEOWNERS.replace(
        "/own/beta.yaml @beta/it", "/own/beta.yaml @acme/pbx-admins @beta/it"))
    failed = run_cli("owners", "--codeowners", "--check")
    assert failed.code == 1
    assert (
        "-/own/beta.yaml @acme/pbx-admins @beta/it @example-provider/pbx-operations\n" in failed.out
    )
    assert "+/own/beta.yaml @beta/it @example-provider/pbx-operations\n" in failed.out
    assert ".github/CODEOWNERS differs from what the owners map owners.yaml implies" in failed.err
    # Another file, given by name.
    write(tmp_path / "docs" / "CODEOWNERS", CODEOWNERS)
    assert run_cli("owners", "--codeowners", "--check", "docs/CODEOWNERS").code == 0


def test_owners_without_a_map_or_with_wrong_options_is_one_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("owners", "--codeowners")
    assert result.code == 1
    assert "no owners map: owners.yaml does not exist" in result.err
    write(tmp_path / "owners.yaml", MAP)
    assert run_cli("owners", "--check").code == 1
    assert run_cli("owners", "somefile").code == 1
    listing = run_cli("owners")
    assert listing.code == 0
    assert "100  own/acme.yaml  @acme/pbx-admins  (no such file yet)" in listing.out


def test_this_repositorys_codeowners_is_the_one_its_map_implies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPO)
    result = run_cli("owners", "--codeowners", "--check")
    assert result.code == 0, result
    # Every example spec is bound to its file.
    assert run_cli("--require-owners", "validate", "--offline", "specs/customers").code == 0


def test_the_owners_schema_ships_and_describes_this_repositorys_map() -> None:
    schema = json.loads((REPO / "schemas" / "owners.schema.json").read_text())
    assert schema["required"] == ["version", "provider", "customers"]


def test_fmt_leaves_a_file_alone_that_may_not_speak_for_its_customer(owned: Billing) -> None:
    messy = HOSTILE.replace("customer:\n  id: 200\n  name: Guessed Name\n",
                            "customer: {name: X, id: 200}\n")
    spec = write(owned.workdir / "own" / "acme.yaml", messy)
    result = owned.cli("fmt", "own")
    assert result.code == 1, result
    assert "error[customer_not_owned] own/acme.yaml:2:" in result.out
    assert spec.read_text() == messy
    write(spec, messy.replace("id: 200", "id: 100"))
    assert owned.cli("fmt", "own").code == 0
    assert "customer:\n  id: 100\n  name: X\n" in spec.read_text()
