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


ENTRY = 'extensions:\n  - extension: "1"\n    name: A\n    product: P\n'
EXT4 = NewEntry([("extension", '"4"'), ("name", "D"), ("product", "P")])


def test_lists_added_where_there_were_none_go_before_blocked_in_brackets() -> None:
    # In the order adopt adds them: two keys inserted at one place keep the order of the calls.
    after = edit(
        HEAD + ENTRY + "    blocked: true\n",
        ("set_list", (("extensions", 0), "addons", [], ["Rec", "Fax"], "addon")),
        ("set_list", (("extensions", 0), "dids", [], ["1234567", "7654321"], "did")),
    )
    assert after == HEAD + ENTRY + (
        '    addons: [Rec, Fax]\n    dids: ["1234567", "7654321"]\n    blocked: true\n'
    )


@pytest.mark.parametrize("empty", ["", " ~", " null"])
def test_a_list_left_empty_gets_its_items_in_brackets(empty: str) -> None:
    after = edit(
        HEAD + ENTRY + f"    addons:{empty}\n    dids:{empty}  # numbers\n",
        ("set_list", (("extensions", 0), "addons", [], ["Rec", "Fax"], "addon")),
        ("set_list", (("extensions", 0), "dids", [], ["1234567"], "did")),
    )
    assert after == HEAD + ENTRY + '    addons: [Rec, Fax]\n    dids: ["1234567"]  # numbers\n'


def test_items_added_to_a_list_take_the_style_of_its_items() -> None:
    before = HEAD + ENTRY + "    addons:\n      - \"Rec\"\n    dids: ['1234567']\n"
    after = edit(
        before,
        ("set_list", (("extensions", 0), "addons", [0], ["Fax", "Voice mail"], "addon")),
        ("set_list", (("extensions", 0), "dids", [0], ["7654321", "2345678"], "did")),
    )
    assert after == HEAD + ENTRY + (
        '    addons:\n      - "Rec"\n      - "Fax"\n      - "Voice mail"\n'
        "    dids: ['1234567', '7654321', '2345678']\n"
    )


def test_an_empty_flow_list_gets_double_quoted_dids_and_plain_names() -> None:
    after = edit(
        HEAD + ENTRY + "    addons: []\n    dids: []\n",
        ("set_list", (("extensions", 0), "dids", [], ["1234567", "7654321"], "did")),
        ("set_list", (("extensions", 0), "addons", [], ["Rec"], "addon")),
    )
    assert after == HEAD + ENTRY + '    addons: [Rec]\n    dids: ["1234567", "7654321"]\n'


def test_a_key_is_added_after_an_empty_value_on_the_next_line() -> None:
    after = edit(
        HEAD + ENTRY + "    addons:\n    blocked: true\n",
        ("set_list", (("extensions", 0), "dids", [], ["1234567"], "did")),
    )
    assert after == HEAD + ENTRY + '    addons:\n    dids: ["1234567"]\n    blocked: true\n'


def test_an_entry_ending_in_an_empty_value_is_removed_whole() -> None:
    second = '  - extension: "2"\n    name: B\n    product: P\n'
    after = edit(HEAD + ENTRY + "    addons:\n" + second, ("remove_entry", ("extensions", 0)))
    assert after == HEAD + "extensions:\n" + second


def test_a_block_scalar_is_replaced_without_its_line_break() -> None:
    # The last character of the old value is an X: only line breaks are trimmed from its end.
    after = edit(
        HEAD + 'extensions:\n  - extension: "1"\n    name: |\n      Suite X\n    product: P\n',
        ("set_scalar", (("extensions", 0, "name"), "Suite Y")),
    )
    assert after == HEAD + 'extensions:\n  - extension: "1"\n    name: Suite Y\n    product: P\n'


def test_a_new_section_takes_the_style_of_the_other_sections_entries() -> None:
    aa = "auto_attendants:\n- number: 1\n  name: M\n  product: AA\n"
    after = edit(HEAD + aa, ("append_entry", ("extensions", EXT3)))
    assert after == HEAD + aa + 'extensions:\n- extension: "3"\n  name: C\n  product: P\n'
    # A flow list of entries gives no style: the block entries of the next section do.
    flow = 'extensions: [{extension: "1", name: A, product: P}]\n'
    after = edit(
        HEAD + flow + aa + "prune: false\n",
        (
            "append_entry",
            ("auto_attendants", NewEntry([("number", "2"), ("name", "N"), ("product", "AA")])),
        ),
    )
    assert after == HEAD + flow + aa + "- number: 2\n  name: N\n  product: AA\nprune: false\n"


def test_new_entries_follow_flow_entries_and_default_to_two_and_four_spaces() -> None:
    flow = 'extensions:\n  - {extension: "1", name: A, product: P}\n'
    after = edit(
        HEAD + flow,
        (
            "append_entry",
            ("auto_attendants", NewEntry([("number", "1"), ("name", "M"), ("product", "AA")])),
        ),
        (
            "append_entry",
            ("auto_attendants", NewEntry([("number", "2"), ("name", "N"), ("product", "AA")])),
        ),
    )
    assert after == HEAD + flow + (
        "auto_attendants:\n  - {number: 1, name: M, product: AA}\n"
        "  - {number: 2, name: N, product: AA}\n"
    )
    after = edit(
        HEAD, ("append_entry", ("extensions", EXT3)), ("append_entry", ("extensions", EXT4))
    )
    assert after == HEAD + (
        'extensions:\n  - extension: "3"\n    name: C\n    product: P\n'
        '  - extension: "4"\n    name: D\n    product: P\n'
    )


def test_entries_appended_to_a_list_and_to_an_empty_section() -> None:
    after = edit(
        HEAD + ENTRY, ("append_entry", ("extensions", EXT3)), ("append_entry", ("extensions", EXT4))
    )
    assert after == HEAD + ENTRY + (
        '  - extension: "3"\n    name: C\n    product: P\n'
        '  - extension: "4"\n    name: D\n    product: P\n'
    )
    aa = "auto_attendants:\n  - {number: 1, name: M, product: AA}\n"
    after = edit(
        HEAD + "extensions: ~\n" + aa,
        ("append_entry", ("extensions", EXT3)),
        ("append_entry", ("extensions", EXT4)),
    )
    assert (
        after
        == HEAD
        + (
            'extensions:\n  - {extension: "3", name: C, product: P}\n'
            '  - {extension: "4", name: D, product: P}\n'
        )
        + aa
    )


@pytest.mark.parametrize(
    ("before", "steps", "message"),
    [
        ("{version: 1}\n", (), "the spec is not a block mapping at the top level"),
        (
            HEAD + ENTRY + "    addons: Rec\n",
            (("set_list", (("extensions", 0), "addons", [], ["Fax"], "addon")),),
            "('extensions', 0).addons is not a list",
        ),
        (
            HEAD + ENTRY + '    addons: ""\n',
            (("set_list", (("extensions", 0), "addons", [], ["Fax"], "addon")),),
            "('extensions', 0).addons is not a list",
        ),
        (
            HEAD + ENTRY + "    addons: {Rec: 1}\n",
            (("set_list", (("extensions", 0), "addons", [], ["Fax"], "addon")),),
            "('extensions', 0).addons is not a list",
        ),
        (
            HEAD + "extensions:\n  - {blocked: true}\n",
            (("set_list", (("extensions", 0), "addons", [], ["Fax"], "addon")),),
            "no place for addons in the entry",
        ),
        (
            HEAD + ENTRY,
            (("set_scalar", (("extensions", 1, "name"), "B")),),
            "no entry at ('extensions', 1, 'name')",
        ),
        (
            HEAD + ENTRY,
            (("set_scalar", (("extensions", 0, "addons"), "B")),),
            "no key at ('extensions', 0, 'addons')",
        ),
        (
            HEAD + ENTRY,
            (("set_scalar", (("extensions", 0), "B")),),
            "('extensions', 0) is not a single value",
        ),
        (
            HEAD + ENTRY,
            (("set_scalar", (("extensions", 0, "name"), "B")), ("remove_entry", ("extensions", 0))),
            "two edits overlap",
        ),
        (
            HEAD + "extensions: none\n",
            (("append_entry", ("extensions", EXT3)),),
            "extensions is not a list",
        ),
        (
            HEAD + 'extensions: ""\n',
            (("append_entry", ("extensions", EXT3)),),
            "extensions is not a list",
        ),
        (HEAD + "extensions: [{extension: '1', name: A, product: P},\n  {x: 1}]\n", (), None),
    ],
    ids=[
        "flow-root",
        "scalar-list",
        "quoted-empty-list",
        "mapping-list",
        "no-place",
        "no-entry",
        "no-key",
        "not-a-value",
        "overlap",
        "scalar-section",
        "quoted-empty-section",
        "nothing-to-refuse",
    ],
)
def test_a_layout_that_cannot_be_edited_is_refused_with_its_reason(
    before: str, steps: tuple[tuple[str, tuple[object, ...]], ...], message: str | None
) -> None:
    # adopt shows the reason: "cannot rewrite this layout: <reason>; left as it is".
    if message is None:
        assert edit(before, *steps) == before
        return
    with pytest.raises(SpecEditError) as raised:
        edit(before, *steps)
    assert str(raised.value) == message


def test_an_empty_section_with_nothing_appended_is_left_as_it_is() -> None:
    before = HEAD + "extensions:\nauto_attendants: []\n"
    assert (
        edit(before, ("remove_entry", ("extensions", 0)), ("remove_entry", ("auto_attendants", 0)))
        == before
    )


def test_a_comment_above_an_entry_goes_with_it_unless_a_blank_line_parts_them() -> None:
    second = '  - extension: "2"\n    name: B\n    product: P\n'
    parted = HEAD + ENTRY + "  # about 2\n\n" + second
    assert edit(parted, ("remove_entry", ("extensions", 1))) == HEAD + ENTRY + "  # about 2\n\n"
    # A dash at an odd column: the comment at that column belongs to the entry below it.
    odd = HEAD + 'extensions:\n - extension: "1"\n   name: A\n   product: P\n # about 2\n'
    odd_second = ' - extension: "2"\n   name: B\n   product: P\n'
    assert edit(odd + odd_second, ("remove_entry", ("extensions", 1))) == odd.replace(
        " # about 2\n", ""
    )


def test_a_single_quoted_name_is_renamed_in_single_quotes() -> None:
    before = HEAD + "extensions:\n  - extension: '3'\n    name: 'Dan'\n    product: P\n"
    after = edit(before, ("set_scalar", (("extensions", 0, "name"), "Dan O'Neil")))
    assert after == before.replace("'Dan'", "'Dan O''Neil'")


@pytest.mark.parametrize("empty", ["", " ~", " null", " []"])
def test_entries_appended_to_a_section_left_empty(empty: str) -> None:
    after = edit(HEAD + f"extensions:{empty}\n", ("append_entry", ("extensions", EXT3)))
    assert after == HEAD + 'extensions:\n  - extension: "3"\n    name: C\n    product: P\n'


def test_an_entry_whose_dash_is_alone_on_its_line_is_refused() -> None:
    before = HEAD + 'extensions:\n  -\n    extension: "1"\n    name: A\n    product: P\n'
    with pytest.raises(SpecEditError) as raised:
        edit(before, ("remove_entry", ("extensions", 0)))
    assert str(raised.value) == "a sequence item that does not start its own line"


def test_an_explicit_key_without_a_value_is_refused() -> None:
    with pytest.raises(SpecEditError) as raised:
        edit(HEAD + "? extensions\n", ("append_entry", ("extensions", EXT3)))
    assert str(raised.value) == "a key without its colon"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("Anna ", '"Anna "'),  # a trailing space would be lost unquoted
        ("Zoë\u202eevil", '"Zoë\\u202eevil"'),  # a bidi override is written as an escape
    ],
)
def test_values_that_must_not_be_plain(value: str, written: str) -> None:
    assert plain_or_quoted(value) == written
    assert yaml.safe_load(f"k: {written}") == {"k": value}


def test_a_key_added_to_an_entry_of_one_key_lines_up_with_it() -> None:
    before = HEAD + 'extensions:\n  - extension: "1"\n'
    after = edit(before, ("set_list", (("extensions", 0), "dids", [], ["1234567"], "did")))
    assert after == before + '    dids: ["1234567"]\n'


@pytest.mark.parametrize("name", ["|\n      Suite X\n", "Suite\n      X\n"], ids=["block", "plain"])
def test_an_entry_whose_last_value_spans_lines_is_removed_whole(name: str) -> None:
    second = '  - extension: "2"\n    name: B\n    product: P\n'
    before = HEAD + 'extensions:\n  - extension: "1"\n    product: P\n    name: ' + name + second
    assert edit(before, ("remove_entry", ("extensions", 0))) == HEAD + "extensions:\n" + second
