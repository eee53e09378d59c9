"""Every problem at once, in plain words: what a person editing a spec by hand reads."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import Billing
from tests.helpers import FIXTURES, all_problems, run_cli

SEVEN = FIXTURES / "mistakes" / "seven-mistakes.yaml"


@pytest.fixture
def backend(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    loaded = run_cli("--backend", url, "state", "load", str(FIXTURES / "state.yaml"))
    assert loaded.code == 0, loaded
    return url


def _marked(path: Path) -> list[tuple[int, str]]:
    """(line, code) of every line that carries a '# <- code' marker, in line order."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = re.search(r"#\s*<-\s*(\w+)\s*$", line)
        if match:
            found.append((number, match.group(1)))
    return found


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _spec(entries: str, *, customer: str = "  id: 100\n  name: Acme\n") -> str:
    return f"version: 1\ncustomer:\n{customer}{entries}"


def test_a_file_with_many_independent_mistakes_reports_all_of_them_in_one_run(
    billing: Billing,
) -> None:
    billing.load(FIXTURES / "state.yaml")
    expected = _marked(SEVEN)
    assert len(expected) >= 7
    result = billing.cli("validate", str(SEVEN), "--format", "json")
    assert result.code == 1, result
    got = [(p["line"], p["code"]) for p in all_problems(result.json)]
    assert got == expected

    text = billing.cli("validate", str(SEVEN))
    lines = [line for line in text.out.splitlines() if line.startswith("error[")]
    shown = [(int(re.search(r":(\d+):\d+: ", line).group(1)), line.split("]")[0][6:])
             for line in lines]
    assert shown == expected
    assert text.out.splitlines()[-1] == (
        f"1 spec file(s) checked, 1 invalid: {len(expected)} error(s), 0 warning(s)."
    )


def test_the_offline_check_reports_every_schema_and_duplicate_mistake_too() -> None:
    offline = {"schema", "duplicate_extension", "did_duplicate"}
    expected = [(line, code) for line, code in _marked(SEVEN) if code in offline]
    result = run_cli("validate", "--offline", str(SEVEN), "--format", "json")
    assert result.code == 1
    assert [(p["line"], p["code"]) for p in all_problems(result.json)] == expected


def test_messages_speak_to_a_person_editing_yaml(backend: str) -> None:
    result = run_cli("--backend", backend, "validate", str(SEVEN))
    out = result.out
    assert "unknown key 'extention'; did you mean 'extension'?" in out
    assert "unknown key 'add-ons'; did you mean 'addons'?" in out
    assert "no product named 'Cloud PBX servce'; did you mean 'Cloud PBX service'?" in out
    assert "extension 11 is listed twice (first at line 11)" in out
    assert (
        "No is read by YAML as the boolean false, not as text; "
        'to mean the text, quote it: name: "No"'
        in out
    )
    assert 'a list is wanted, not one value; write dids: ["15550000002"]' in out
    # A misspelt required key is one mistake: no second "extension is missing" for it.
    assert "required key 'extension'" not in out


def test_each_missing_key_is_said_once(tmp_path: Path) -> None:
    path = _write(tmp_path, _spec("extensions:\n  - {extension: '1'}\n"))
    result = run_cli("validate", "--offline", str(path))
    assert result.code == 1
    missing = [line for line in result.out.splitlines() if "is missing" in line]
    assert missing == [
        f"error[schema] {path}:6:5: 1st extension: the required key 'name' is missing",
        f"error[schema] {path}:6:5: 1st extension: the required key 'product' is missing",
    ]


def test_a_tab_in_the_indentation_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, _spec("extensions:\n  - extension: '1'\n\tname: Tab\n"))
    result = run_cli("validate", "--offline", str(path))
    assert result.code == 1
    assert (
        f"error[yaml_syntax] {path}:7:1: a tab character is used to indent this line" in result.out
    )
    assert "spaces only" in result.out


@pytest.mark.parametrize(
    ("value", "shown"),
    [("yes", 'quote it: name: "yes"'), ("1234", 'quote it: name: "1234"'), ("1.5", 'name: "1.5"')],
)
def test_a_yaml_boolean_or_number_where_text_is_wanted_says_how_it_was_read(
    tmp_path: Path, value: str, shown: str
) -> None:
    path = _write(
        tmp_path, _spec(f"extensions:\n  - extension: '1'\n    name: {value}\n    product: Cloud "
                        "PBX service\n")
    )
    result = run_cli("validate", "--offline", str(path))
    assert f"{path}:7:11: 1st extension, name: {value} is read by YAML as" in result.out
    assert shown in result.out


def test_a_scalar_where_a_list_is_wanted_shows_the_list_form(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _spec("extensions:\n  - extension: '1'\n    name: A\n    product: Cloud PBX service\n"
              "    addons: Call recording\n"),
    )
    result = run_cli("validate", "--offline", str(path))
    assert (
        "1st extension, addons: a list is wanted, not one value; write addons: [Call recording]"
        in result.out
    )


def test_a_repeated_key_names_the_line_of_the_first(tmp_path: Path) -> None:
    path = _write(tmp_path, _spec("extensions:\n  - extension: '1'\n    name: A\n    name: B\n    "
                                  "product: P\n"))
    result = run_cli("validate", "--offline", str(path))
    assert (
        f"error[duplicate_key] {path}:8:5: "
        "the key 'name' appears twice in the same mapping (first at line 7)"
        in result.out
    )


def test_a_did_or_add_on_listed_twice_in_one_list_is_an_error(backend: str, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _spec("extensions:\n  - extension: '1'\n    name: Alice\n    product: Cloud PBX service\n"
              "    addons: [Call recording, Call recording]\n"
              "    dids: ['15550000001', '15550000001']\n"),
    )
    result = run_cli("--backend", backend, "plan", str(path), "--format", "json")
    assert result.code == 1
    problems = [(p["code"], p["line"], p["message"]) for p in all_problems(result.json)]
    assert problems == [
        ("schema", 9,
         "1st extension, addons: 'Call recording' is listed twice (first at line 9); say it once"),
        ("did_duplicate", 10,
         "DID 15550000001 is listed twice for this extension (first at line 10); say it once"),
    ]
    # A spec with errors is never planned for apply: no changes come out of it.
    assert result.json["customers"][0]["changes"] == []


def test_a_schema_error_hides_only_the_checks_of_the_broken_value(backend: str,
                                                                  tmp_path: Path) -> None:
    # The name is broken; the product of the same entry is still checked against the agreement.
    path = _write(
        tmp_path, _spec("extensions:\n  - extension: '7'\n    name: [A]\n    product: Hotdesk\n")
    )
    result = run_cli("--backend", backend, "validate", str(path), "--format", "json")
    codes = [(p["code"], p["line"]) for p in all_problems(result.json)]
    assert codes == [("schema", 7), ("product_not_in_agreement", 8)]


def test_a_quoted_auto_attendant_number_is_accepted_as_a_quoted_extension_is(
    backend: str, tmp_path: Path
) -> None:
    path = _write(
        tmp_path,
        _spec('auto_attendants:\n  - number: "1"\n    name: Menu\n    product: Auto attendant\n')
    )
    result = run_cli("--backend", backend, "plan", str(path), "--format", "json")
    assert result.code == 0, result
    [created] = result.json["customers"][0]["changes"]
    assert (created["op"], created["account"]) == ("create_account", "ph100aa1")


def test_the_summary_counts_every_file_read(tmp_path: Path) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    good = _spec("extensions: []\n")
    _write(folder, good, "a.yaml")
    _write(folder, good, "b.YAML")  # the same customer again, and an upper-case suffix
    _write(folder, "version: 1\ncustomer: {}\n", "c.yml")
    result = run_cli("validate", "--offline", str(folder))
    assert result.code == 1
    assert "error[duplicate_customer]" in result.out and "b.YAML" in result.out
    assert result.out.splitlines()[-1].startswith("3 spec file(s) checked, 2 invalid:")


def test_problems_of_several_files_come_sorted_by_file_then_line(tmp_path: Path) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    shutil.copy(SEVEN, folder / "b.yaml")
    _write(folder, "version: 2\ncustomer: {id: 300, name: C}\nprune: maybe\n", "a.yaml")
    result = run_cli("validate", "--offline", str(folder), "--format", "json")
    located = [(Path(p["file"]).name, p["line"]) for p in all_problems(result.json)]
    text = run_cli("validate", "--offline", str(folder))
    shown = [
        (Path(m.group(1)).name, int(m.group(2)))
        for m in re.finditer(r"^error\[\w+\] (\S+):(\d+):\d+:", text.out, re.MULTILINE)
    ]
    assert shown == sorted(located)
    assert shown[0] == ("a.yaml", 1)


def test_global_options_are_accepted_after_the_command(backend: str) -> None:
    after = run_cli("validate", str(SEVEN), "--backend", backend, "--format", "json")
    before = run_cli("--backend", backend, "validate", str(SEVEN), "--format", "json")
    assert after.code == before.code == 1
    assert after.json == before.json
    assert "unknown_product" in {p["code"] for p in all_problems(after.json)}


def test_a_normalised_did_points_at_fmt(backend: str, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _spec("extensions:\n  - extension: '7'\n    name: A\n    product: Cloud PBX service\n"
              "    dids: ['+1 555 000-0002']\n"),
    )
    result = run_cli("--backend", backend, "validate", str(path))
    assert result.code == 0, result
    assert "warning[did_normalised]" in result.out and "`reconciler fmt`" in result.out


def test_a_did_given_to_two_accounts_is_found_offline_with_the_line_of_the_first(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path,
        _spec("extensions:\n"
              "  - {extension: '1', name: A, product: Cloud PBX service, dids: ['15550000002']}\n"
              "  - {extension: '2', name: B, product: Cloud PBX service, "
              "dids: ['1 555 000 0002']}\n"),
    )
    result = run_cli("validate", "--offline", str(path), "--format", "json")
    [problem] = all_problems(result.json)
    assert (problem["code"], problem["line"]) == ("did_duplicate", 7)
    assert (
        problem["message"]
        == "DID 15550000002 is given to both ph100x1 and ph100x2 (first at line 6)"
    )


def test_a_problem_after_a_broken_list_item_points_at_its_own_item(backend: str,
                                                                   tmp_path: Path) -> None:
    # The first DID is broken; the second one (another customer's) is still checked, at its place.
    path = _write(
        tmp_path,
        _spec("extensions:\n  - extension: '7'\n    name: A\n    product: Cloud PBX service\n"
              "    dids: ['12-34', '15550000201']\n"
              "    addons: [[Call recording], Hotdesk]\n"),
    )
    result = run_cli("--backend", backend, "validate", str(path), "--format", "json")
    located = [(p["code"], p["line"], p["column"]) for p in all_problems(result.json)]
    assert located == [
        ("schema", 9, 12),
        ("did_not_owned", 9, 21),
        ("schema", 10, 14),
        ("wrong_product_type", 10, 32),
    ]


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        (["plan", "specs", "--backend", "U", "--format", "json"],
         ["--backend", "U", "plan", "specs", "--format", "json"]),
        (["state", "load", "f.yaml", "--backend=U"], ["--backend=U", "state", "load", "f.yaml"]),
        (["--backend", "U", "validate", "s"], ["--backend", "U", "validate", "s"]),
        (["apply", "--plan", "p.json", "--lock-timeout", "5", "--parallelism", "2"],
         ["--lock-timeout", "5", "--parallelism", "2", "apply", "--plan", "p.json"]),
        (["fmt", "--", "--backend"], ["fmt", "--", "--backend"]),
    ],
)
def test_global_options_after_the_command_are_read_as_global(typed: list[str],
                                                             read: list[str]) -> None:
    from reconciler.cli import cli
    from reconciler.cli.argv import global_options_first

    assert global_options_first(typed, set(cli.commands)) == read


def test_a_value_starting_with_a_reserved_character_is_told_to_be_quoted(tmp_path: Path) -> None:
    path = _write(tmp_path,
                  _spec("extensions:\n  - extension: '1'\n    name: @home\n    product: P\n"))
    result = run_cli("validate", "--offline", str(path))
    assert (
        f"error[yaml_syntax] {path}:7:11: "
        "invalid YAML: a value cannot start with '@' unless it is quoted"
        in result.out
    )


def test_a_did_on_three_accounts_is_reported_on_the_second_and_third(tmp_path: Path) -> None:
    # Found by the fuzz test: the first holder had itself lost a DID to an earlier account.
    path = _write(
        tmp_path,
        _spec("extensions:\n"
              "  - {extension: '1', name: A, product: P, dids: ['15550001001']}\n"
              "  - {extension: '2', name: B, product: P, dids: ['15550001001', '15550001003']}\n"
              "auto_attendants:\n"
              "  - {number: 1, name: M, product: P, dids: ['15550001003', '15550001001']}\n"),
    )
    result = run_cli("validate", "--offline", str(path), "--format", "json")
    assert [(p["code"], p["line"], p["message"]) for p in all_problems(result.json)] == [
        ("did_duplicate", 7,
         "DID 15550001001 is given to both ph100x1 and ph100x2 (first at line 6)"),
        ("did_duplicate", 9,
         "DID 15550001003 is given to both ph100x2 and ph100aa1 (first at line 7)"),
        ("did_duplicate", 9,
         "DID 15550001001 is given to both ph100x1 and ph100aa1 (first at line 6)"),
    ]
