"""Located edits of spec text (what adopt writes) across the layouts people use.

Each case gives the whole text before and after: every byte outside the edit is compared.
"""

from __future__ import annotations

import pytest
import yaml

from reconciler.specedit import NewEntry, SpecEditError, SpecEditor, plain_or_quoted

HEAD = "version: 1\ncustomer: {id: 1, name: A}\n"
EXT3 = NewEntry([("extension", '"3"'), ("name", "C"), ("product", "P")])


def edit(text: str, *steps: tuple[str, tuple[object, ...]]) -> str:
    editor = SpecEditor(text)
    for name, args in steps:
        getattr(editor, name)(*args)
    result = editor.result()
    yaml.safe_load(result)  # always YAML
    return result


def test_dashes_at_the_keys_column_and_no_final_line_break() -> None:
    before = HEAD + (
        'extensions:\n- extension: "1"\n  name: A\n  product: P\n'
        '- extension: "2"\n  name: B\n  product: P'
    )
    after = edit(before, ("set_list", (("extensions", 0), "dids", [], ["7654321"], "did")),
                 ("remove_entry", ("extensions", 1)), ("append_entry", ("extensions", EXT3)))
    assert after == HEAD + (
        'extensions:\n- extension: "1"\n  name: A\n  product: P\n  dids: ["7654321"]\n'
        '- extension: "3"\n  name: C\n  product: P'
    )


def test_flow_entries_in_a_block_list() -> None:
    before = HEAD + (
        'extensions:\n  - {extension: "1", name: A, product: P}\n'
        '  - {extension: "2", name: B, product: P, dids: ["1234567"]}\n'
    )
    after = edit(before, ("set_list", (("extensions", 0), "addons", [], ["Rec"], "addon")),
                 ("set_list", (("extensions", 1), "dids", [], [], "did")),
                 ("append_entry", ("extensions", EXT3)))
    assert after == HEAD + (
        'extensions:\n  - {extension: "1", name: A, product: P, addons: [Rec]}\n'
        '  - {extension: "2", name: B, product: P, dids: []}\n'
        '  - {extension: "3", name: C, product: P}\n'
    )


def test_a_flow_list_of_entries() -> None:
    before = HEAD + (
        'extensions: [{extension: "1", name: A, product: P}, '
        '{extension: "2", name: B, product: P}]  # x\n'
    )
    after = edit(before, ("remove_entry", ("extensions", 0)),
                 ("append_entry", ("extensions", EXT3)))
    assert after == HEAD + (
        'extensions: [{extension: "2", name: B, product: P}, '
        '{extension: "3", name: C, product: P}]  # x\n'
    )


def test_removed_entries_take_their_own_comments_and_a_new_section_goes_last() -> None:
    before = HEAD + (
        "# the extensions\nextensions:\n  # first\n  - extension: \"1\"\n    name: A\n    product: "
        "P\n    # inside the first\n  # second\n  - extension: \"2\"\n    name: B\n    product: "
        "P\n# trailer\n"
    )
    after = edit(before, ("remove_entry", ("extensions", 0)), ("remove_entry", ("extensions", 1)),
                 ("append_entry", ("auto_attendants",
                                   NewEntry([("number", "1"), ("name", "M"), ("product", "AA")]))))
    assert after == HEAD + (
        "# the extensions\nextensions: []\n# trailer\nauto_attendants:\n  - number: 1\n    name: "
        "M\n    product: AA\n"
    )


def test_block_lists_keep_their_items_and_comments() -> None:
    before = HEAD + (
        'extensions:\n  - extension: "1"\n    name: A\n    product: P\n    addons:\n      - Rec   '
        '# recording\n'
        "      - Fax\n    dids:\n      - '1234567'\n    blocked: false\n"
    )
    after = edit(before, ("set_list", (("extensions", 0), "addons", [0], ["Voice mail"], "addon")),
                 ("set_list", (("extensions", 0), "dids", [0], ["7654321"], "did")),
                 ("set_scalar", (("extensions", 0, "name"), "O'Brien: boss")))
    assert after == HEAD + (
        'extensions:\n  - extension: "1"\n    name: "O\'Brien: boss"\n    product: P\n    addons:\n'
        "      - Rec   # recording\n      - Voice mail\n    dids:\n      - '1234567'\n      - "
        "'7654321'\n    blocked: false\n"
    )


def test_an_emptied_block_list_becomes_brackets() -> None:
    before = HEAD + (
        'extensions:\n  - extension: "1"\n    name: A\n    product: P\n'
        '    dids:   # numbers\n      - "1234567"\n'
    )
    after = edit(before, ("set_list", (("extensions", 0), "dids", [], [], "did")))
    assert (
        after
        == HEAD
        + 'extensions:\n  - extension: "1"\n    name: A\n    product: P\n    dids: []   # numbers\n'
    )


def test_an_empty_section_gets_block_entries_under_its_comment() -> None:
    before = HEAD + "extensions: []  # none yet"
    after = edit(before, ("append_entry", ("extensions", EXT3)))
    assert (
        after == HEAD + 'extensions:  # none yet\n  - extension: "3"\n    name: C\n    product: P'
    )


def test_new_entries_follow_the_files_indentation() -> None:
    before = HEAD + 'extensions:\n    -   extension: "1"\n        name: A\n        product: P\n'
    after = edit(before, ("append_entry", ("extensions", EXT3)))
    assert after.endswith('    -   extension: "3"\n        name: C\n        product: P\n')


def test_a_root_that_is_not_a_block_mapping_is_refused() -> None:
    with pytest.raises(SpecEditError):
        SpecEditor("{version: 1, customer: {id: 1, name: A}}\n")


@pytest.mark.parametrize(
    ("value", "like", "written"),
    [
        ("Anna Adler", None, "Anna Adler"),
        ("Anna Adler", '"', '"Anna Adler"'),
        ("Anna Adler", "'", "'Anna Adler'"),
        ("It's", "'", "'It''s'"),
        ("No", None, '"No"'),  # a YAML 1.1 boolean, quoted
        ("123", None, '"123"'),
        ("a: b", None, '"a: b"'),
        ("x #y", None, '"x #y"'),
        ("Zoë", None, '"Zoë"'),
        ("", None, '""'),
    ],
)
def test_scalars_are_quoted_when_they_must_be(value: str, like: str | None, written: str) -> None:
    assert plain_or_quoted(value, like) == written
    assert yaml.safe_load(f"k: {written}") == {"k": value}
