"""The spec rules as pure functions: discovery, what a spec reads as, and every message's wording.

In-process and fast; part of the mutation-testing set (docs/mutation-and-bench.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.changes import (
    AddAddon,
    AddAlias,
    Block,
    CreateAccount,
    RemoveAddon,
    RemoveAlias,
    SetName,
    change_from_dict,
    sort_key,
)
from reconciler.errors import UsageError
from reconciler.model import (
    Problem,
    managed_key,
    managed_kind,
)
from reconciler.spec import discover, load_spec, normalise_did
from reconciler.yamlload import Limits

HEAD = "version: 1\ncustomer: {id: 100, name: Acme}\n"


def load(tmp_path: Path, text: str, name: str = "acme.yaml"):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_text(text)
    return load_spec(str(path))


def col(tmp_path: Path, line: int, text: str, name: str = "acme.yaml") -> int:
    """The 1-based column where ``text`` starts on ``line`` of the spec file."""
    return (tmp_path / name).read_text().splitlines()[line - 1].index(text) + 1


def problems(loaded) -> list[tuple[str, str, int | None, int | None]]:  # type: ignore[no-untyped-def]
    return [(p.code, p.message, p.line, p.column) for p in loaded.errors]


# ---- discovery -----------------------------------------------------------------------------------


def test_discover_finds_yaml_files_in_folders_sorted_and_skips_the_rest(tmp_path: Path) -> None:
    # Other files around the specs (whatever order the file system lists them in) are skipped,
    # never the end of the folder.
    others = [f"b/notes-{n}.txt" for n in range(20)]
    for name in ("b/two.yml", "a/one.yaml", "a/deeper/three.yaml", "a/notes.txt", "c.yaml",
                 *others):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(HEAD)
    found = discover([str(tmp_path / "b"), str(tmp_path / "a"), str(tmp_path / "c.yaml")])
    assert found == sorted(os.path.normpath(str(tmp_path / n))
                           for n in ("a/deeper/three.yaml", "a/one.yaml", "b/two.yml", "c.yaml"))


def test_discover_refuses_a_missing_path_and_a_folder_without_specs(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    with pytest.raises(UsageError) as missing:
        discover([str(tmp_path / "nope")])
    assert str(missing.value) == f"{tmp_path / 'nope'}: no such file or folder"
    with pytest.raises(UsageError) as empty:
        discover([str(tmp_path / "empty"), str(tmp_path / "other")])
    assert str(empty.value) == (
        f"no spec files (*.yaml, *.yml) in {tmp_path / 'empty'}, {tmp_path / 'other'}")
    assert discover([]) == []


def test_discover_keeps_links_inside_the_folder_reports_links_outside_and_follows_no_folder_link(
    tmp_path: Path,
) -> None:
    specs, outside = tmp_path / "specs", tmp_path / "outside"
    specs.mkdir()
    outside.mkdir()
    (specs / "real.yaml").write_text(HEAD)
    (outside / "secret.yaml").write_text(HEAD)
    (specs / "inside-link.yaml").symlink_to(specs / "real.yaml")
    (specs / "escape.yaml").symlink_to(outside / "secret.yaml")
    (specs / "linked-folder").symlink_to(outside, target_is_directory=True)
    (specs / "loop").symlink_to(specs, target_is_directory=True)
    found = discover([str(specs)])
    assert found == [str(specs / "escape.yaml"), str(specs / "inside-link.yaml"),
                     str(specs / "real.yaml")]
    escaped = load_spec(str(specs / "escape.yaml"))
    assert problems(escaped) == [(
        "yaml_refused",
        f"the spec is a symbolic link to {outside / 'secret.yaml'}, outside its folder", None,
        None)]
    assert escaped.errors[0].file == str(specs / "escape.yaml") and escaped.spec is None
    assert escaped.file == escaped.yaml.file == str(specs / "escape.yaml")
    assert escaped.customer_id is None
    assert load_spec(str(specs / "inside-link.yaml")).errors == []


def test_every_escaping_link_of_a_folder_is_reported(tmp_path: Path) -> None:
    specs, outside = tmp_path / "specs", tmp_path / "outside"
    specs.mkdir()
    outside.mkdir()
    for name in ("one", "two", "three"):
        (outside / f"{name}.yaml").write_text(HEAD)
        (specs / f"{name}.yaml").symlink_to(outside / f"{name}.yaml")
    assert discover([str(specs)]) == sorted(str(specs / f"{n}.yaml")
                                            for n in ("one", "two", "three"))


def test_a_link_in_the_working_folder_is_judged_against_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "real.yaml").write_text(HEAD + "extensions: []\n")
    (tmp_path / "here" / "link.yaml").symlink_to(tmp_path / "here" / "real.yaml")
    monkeypatch.chdir(tmp_path / "here")
    assert load_spec("link.yaml").errors == []


# ---- what a file reads as ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty: a spec needs at least version and customer "
              "(extensions and auto_attendants may be left out)"),
        ("- a\n- b\n", "a spec must be a mapping (version, customer, ...), not a list"),
        ("just text\n", "a spec must be a mapping (version, customer, ...), not text"),
        ("42\n", "a spec must be a mapping (version, customer, ...), not a number"),
        ("4.5\n", "a spec must be a mapping (version, customer, ...), not float"),
    ],
)
def test_a_file_that_is_not_a_mapping_says_what_it_is(tmp_path: Path, text: str,
                                                      message: str) -> None:
    loaded = load(tmp_path, text)
    assert [(p.code, p.message) for p in loaded.errors] == [("schema", message)]
    assert loaded.errors[0].file == str(tmp_path / "acme.yaml") and loaded.spec is None


def test_a_yaml_syntax_error_is_the_only_problem(tmp_path: Path) -> None:
    loaded = load(tmp_path, "version: 1\ncustomer: {id: 100\n")
    assert [(p.code, p.file) for p in loaded.errors] == [("yaml_syntax",
                                                          str(tmp_path / "acme.yaml"))]
    assert loaded.spec is None


def test_loading_respects_the_limits_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text(HEAD + "extensions: []\n")
    assert load_spec(str(path)).errors == []
    refused = load_spec(str(path), Limits(max_bytes=20))
    assert [(p.code, p.file) for p in refused.errors] == [("yaml_refused", str(path))]
    assert "20" in refused.errors[0].message and refused.spec is None


def test_schema_problems_are_sorted_by_line_and_column_with_breadcrumbs_and_point_at_keys(
    tmp_path: Path,
) -> None:
    # In the order a person reads the file, not by field path: on line 5 the extension (column
    # 17) comes before the unknown key after it, and the unknown top-level key last.
    loaded = load(tmp_path, HEAD + "extensions:\n"
                  "  - {extension: '1', name: A, product: P, dids: ['12345678', 'abc']}\n"
                  "  - {extension: '12a', name: B, product: P, colour: red}\n"
                  "bogus: 1\n")
    assert problems(loaded) == [
        ("schema", "1st extension, 2nd DID: 'abc' is not a DID (digits, e.g. 12094555948)", 4,
         col(tmp_path, 4, "'abc'")),
        ("schema", "2nd extension, extension: '12a' is not an extension (1-15 digits)", 5,
         col(tmp_path, 5, "'12a'")),
        ("schema", ("2nd extension, colour: unknown key 'colour' (allowed: addons, blocked, dids, "
                   "extension, name, product)"), 5, col(tmp_path, 5, "colour")),
        ("schema", ("bogus: unknown key 'bogus' (allowed: auto_attendants, customer, extensions, "
                   "prune, version)"), 6, 1),
    ]


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("1.0", "1.0 is not a whole number"),
        ("true", "true is read by YAML as the boolean true; a whole number is wanted"),
        ("'1.0'", "'1.0' is not an auto attendant number (a positive whole number)"),
    ],
)
def test_an_auto_attendant_number_that_is_not_whole_is_not_told_to_be_quoted(
    tmp_path: Path, written: str, message: str
) -> None:
    # A number may be quoted ("1"), but quoting 1.0 or true would make it no whole number either.
    loaded = load(tmp_path,
                  HEAD + f"auto_attendants:\n  - {{number: {written}, name: M, product: P}}\n")
    assert problems(loaded) == [("schema", f"1st auto attendant, number: {message}", 4, 14)]


def test_a_misspelt_key_gets_did_you_mean_and_no_second_missing_key_problem(tmp_path: Path) -> None:
    loaded = load(tmp_path, HEAD + "extensions:\n  - {extention: '1', name: A, product: P}\n")
    assert problems(loaded) == [
        ("schema", "1st extension, extention: unknown key 'extention'; did you mean 'extension'?",
         4, col(tmp_path, 4, "extention"))]


def test_a_missing_key_is_named_in_plain_words_where_it_belongs(tmp_path: Path) -> None:
    # At the top level there is no breadcrumb to give; inside a mapping, the mapping is named.
    loaded = load(tmp_path, "version: 1\nextensions: []\n")
    assert problems(loaded) == [("schema", "the required key 'customer' is missing", 1, 1)]
    inner = load(tmp_path, "version: 1\ncustomer: {id: 100}\n", "inner.yaml")
    assert problems(inner) == [("schema", "customer: the required key 'name' is missing", 2,
                                col(tmp_path, 2, "{", "inner.yaml"))]


def test_an_extension_with_a_trailing_newline_is_not_an_extension(tmp_path: Path) -> None:
    loaded = load(tmp_path, HEAD + 'extensions:\n  - {extension: "7\\n", name: A, product: P}\n'
                  '  - {extension: "8", name: B, product: P}\n')
    assert problems(loaded) == [
        ("schema", "1st extension, extension: '7\\n' is not an extension (1-15 digits)", 4,
         col(tmp_path, 4, '"7'))]


def test_every_broken_entry_is_reported_not_only_the_first(tmp_path: Path) -> None:
    loaded = load(tmp_path, HEAD + "extensions:\n"
                  '  - {extension: "1\\n", name: A, product: P}\n'
                  '  - {extension: "2\\n", name: B, product: P}\n'
                  "  - {extension: '3', name: C, product: P, dids: ['12', '34']}\n"
                  "  - {extension: '3', name: D, product: P}\n"
                  "  - {extension: '3', name: E, product: P}\n")
    assert [(p.code, p.line) for p in loaded.errors] == [
        ("schema", 4), ("schema", 5), ("schema", 6), ("schema", 6),
        ("duplicate_extension", 7), ("duplicate_extension", 8),
    ]


def test_duplicates_name_the_first_occurrence(tmp_path: Path) -> None:
    loaded = load(tmp_path, HEAD + "extensions:\n"
                  "  - {extension: '7', name: A, product: P}\n"
                  "  - {extension: '8', name: B, product: P}\n"
                  "  - {extension: '7', name: C, product: P}\n"
                  "auto_attendants:\n"
                  "  - {number: 1, name: M, product: P}\n"
                  "  - {number: 1, name: N, product: P}\n")
    assert problems(loaded) == [
        ("duplicate_extension", "extension 7 is listed twice (first at line 4)", 6,
         col(tmp_path, 6, "'7'")),
        ("duplicate_auto_attendant", "auto attendant number 1 is listed twice (first at line 8)",
         9, col(tmp_path, 9, "1,")),
    ]


def test_a_did_or_add_on_twice_in_one_list_is_an_error_naming_the_first(tmp_path: Path) -> None:
    # Said once is what was meant; said twice is an error, not silently merged. The same DID
    # written two ways ('+1 ...' and digits) is the same DID.
    loaded = load(tmp_path, HEAD + "extensions:\n"
                  "  - {extension: '1', name: A, product: P, addons: [R, S, R],\n"
                  "     dids: ['12094555948', '+1 209-455-5948']}\n")
    assert problems(loaded) == [
        ("schema", "1st extension, addons: 'R' is listed twice (first at line 4); say it once", 4,
         col(tmp_path, 4, "R]")),
        ("did_duplicate", ("DID 12094555948 is listed twice for this extension (first at line 5); "
                           "say it once"), 5, col(tmp_path, 5, "'+1")),
    ]
    assert loaded.spec is None


def test_dids_are_normalised_with_a_warning_and_refused_when_not_7_to_15_digits(
    tmp_path: Path,
) -> None:
    loaded = load(tmp_path, HEAD + "extensions:\n"
                  "  - {extension: '1', name: A, product: P, dids: ['+1 (209) 455-5948', '123456',"
                  " 12094555949]}\n")
    assert problems(loaded) == [(
        "schema",
        "1st extension, 2nd DID: '123456' is not a DID: it must be 7-15 digits (E.164 without +)",
        4, col(tmp_path, 4, "'123456'"))]
    assert [(p.code, p.message) for p in loaded.warnings] == [
        ("did_normalised",
         "DID '+1 (209) 455-5948' is read as 12094555948; `reconciler fmt` writes it that way")]
    assert normalise_did(" +1 209.455-5948 ") == "12094555948"
    assert normalise_did("12094555948") == "12094555948"


def test_a_valid_spec_reads_as_its_desired_accounts(tmp_path: Path) -> None:
    loaded = load(tmp_path, HEAD + "extensions:\n"
                  "  - {extension: 0466, name: John, product: P, addons: [R], dids: [12094555949],"
                  " blocked: true}\n"
                  "auto_attendants:\n"
                  "  - {number: 2, name: Menu, product: Q}\n")
    assert loaded.errors == [] and loaded.spec is not None
    spec = loaded.spec
    assert (spec.file, spec.customer_id, spec.customer_name, spec.prune) == (
        str(tmp_path / "acme.yaml"), 100, "Acme", False)
    [ext, menu] = spec.accounts
    assert (ext.id, ext.kind, ext.name, ext.product, ext.addons, ext.dids, ext.blocked,
            ext.path) == ("ph100x0466", "extension", "John", "P", ("R",), ("12094555949",),
                          True, ("extensions", 0))
    assert (menu.id, menu.kind, menu.addons, menu.dids, menu.blocked, menu.path) == (
        "ph100aa2", "auto_attendant", (), (), None, ("auto_attendants", 0))
    assert load(tmp_path, HEAD + "prune: true\n", "p.yaml").spec.prune is True  # type: ignore[union-attr]


# ---- the domain model ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "kind", "key"),
    [
        ("ph100x466", "extension", ("extension", "466")),
        ("ph100x0466", "extension", ("extension", "0466")),
        ("ph100aa1", "auto_attendant", ("auto_attendant", "1")),
        ("ph200x466", None, ("extension", "466")),  # another customer's
        ("ph100aa0", None, None),
        ("ph100x", None, None),
        ("ph100x4\n", None, None),
        ("ph100x٤", None, None),  # not ASCII digits
        ("sip-trunk-7", None, None),
    ],
)
def test_managed_account_ids(account: str, kind: str | None, key: tuple[str, str] | None) -> None:
    assert managed_kind(account, 100) == kind
    assert managed_key(account) == key


def test_a_long_message_is_cut_at_500_characters_and_says_how_much_was_cut() -> None:
    assert Problem("schema", "x" * 500).message == "x" * 500
    assert Problem("schema", "x" * 501).message == "x" * 500 + "… (1 more characters)"
    assert Problem("schema", "y" * 2000).message == "y" * 500 + "… (1500 more characters)"


def test_a_problem_says_where_it_is() -> None:
    assert Problem("schema", "m").where() == ""
    assert Problem("schema", "m", "a.yaml").where() == "a.yaml"
    assert Problem("schema", "m", "a.yaml", 3).where() == "a.yaml:3:1"
    assert Problem("schema", "m", "a.yaml", 3, 7).where() == "a.yaml:3:7"


def test_changes_sort_by_op_then_account_then_did_or_product() -> None:
    made = [
        AddAlias("ph1x2", did="15550000002"),
        AddAlias("ph1x2", did="15550000001"),
        AddAddon("ph1x1", product="Zeta"),
        AddAddon("ph1x1", product="Alpha"),
        RemoveAddon("ph1x1", product="Zeta"),
        RemoveAddon("ph1x1", product="Alpha"),
        RemoveAlias("ph1x1", did="15550000009"),
        RemoveAlias("ph1x1", did="15550000003"),
        Block("ph1x3"),
        SetName("ph1x1", from_="A", to="B"),
    ]
    assert [c.to_dict() for c in sorted(made, key=sort_key)] == [
        {"op": "remove_alias", "account": "ph1x1", "did": "15550000003"},
        {"op": "remove_alias", "account": "ph1x1", "did": "15550000009"},
        {"op": "remove_addon", "account": "ph1x1", "product": "Alpha"},
        {"op": "remove_addon", "account": "ph1x1", "product": "Zeta"},
        {"op": "set_name", "account": "ph1x1", "from": "A", "to": "B"},
        {"op": "block", "account": "ph1x3"},
        {"op": "add_addon", "account": "ph1x1", "product": "Alpha"},
        {"op": "add_addon", "account": "ph1x1", "product": "Zeta"},
        {"op": "add_alias", "account": "ph1x2", "did": "15550000001"},
        {"op": "add_alias", "account": "ph1x2", "did": "15550000002"},
    ]


def test_a_change_survives_its_dict_form_and_names_a_missing_field() -> None:
    created = CreateAccount("ph1x1", kind="extension", name="N", product="P",
                     addons=("A", "B"), blocked=False)
    data = created.to_dict()
    assert data == {"op": "create_account", "account": "ph1x1", "kind": "extension", "name": "N",
                    "product": "P", "addons": ["A", "B"], "blocked": False}
    assert change_from_dict(data) == created
    renamed = SetName("ph1x1", from_="Old", to="New")
    assert change_from_dict(renamed.to_dict()) == renamed
    with pytest.raises(KeyError) as missing:
        change_from_dict({"op": "add_alias", "account": "ph1x1"})
    assert missing.value.args == ("did",)
