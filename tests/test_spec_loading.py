"""Spec loading: values as written, DID normalisation, located problems."""

from __future__ import annotations

from pathlib import Path

from reconciler.spec import load_spec, normalise_did
from tests.conftest import write


def _load(tmp_path: Path, body: str):  # type: ignore[no-untyped-def]
    return load_spec(str(write(tmp_path / "s.yaml",
                               "version: 1\ncustomer: {id: 46170, name: ABC}\n" + body)))


def test_extension_and_dids_keep_the_text_written(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "extensions:\n  - extension: 0466\n    name: J\n    product: P\n"
                             "    dids: [12094555948, 0012094555949]\n")
    assert loaded.errors == []
    account = loaded.spec.accounts[0]  # type: ignore[union-attr]
    assert account.id == "ph46170x0466"  # the extension as written: 0466, not 466
    assert account.dids == ("12094555948", "0012094555949")


def test_auto_attendant_ids(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "auto_attendants:\n  - {number: 3, name: Menu, product: AA}\n")
    assert loaded.spec.accounts[0].id == "ph46170aa3"  # type: ignore[union-attr]
    assert loaded.spec.accounts[0].kind == "auto_attendant"  # type: ignore[union-attr]


def test_did_normalisation_is_a_located_warning(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "extensions:\n  - extension: '1'\n    name: J\n    product: P\n"
                             "    dids: ['+1 209-455-5948', '(209) 455.5947']\n")
    assert loaded.errors == []
    assert loaded.spec.accounts[0].dids == ("12094555948", "2094555947")  # type: ignore[union-attr]
    assert [(w.code, w.line, w.column) for w in loaded.warnings] == [
        ("did_normalised", 7, 12), ("did_normalised", 7, 31),
    ]
    assert "'+1 209-455-5948' is read as 12094555948" in loaded.warnings[0].message


def test_short_did_is_a_schema_error_with_its_path(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "extensions:\n  - extension: '1'\n    name: J\n    product: P\n    "
                             "dids: ['+1 209']\n")
    assert [(e.code, e.line) for e in loaded.errors] == [("schema", 7)]
    assert (
        "1st extension, 1st DID" in loaded.errors[0].message
        and "7-15 digits" in loaded.errors[0].message
    )


def test_unknown_key_points_at_the_key_and_lists_the_allowed_ones(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "extensions:\n  - extension: '1'\n    name: J\n    product: P\n    "
                             "colour: red\n")
    error = loaded.errors[0]
    assert (error.code, error.line, error.column) == ("schema", 7, 5)
    assert "1st extension, colour: unknown key 'colour'" in error.message
    assert "allowed: addons, blocked, dids, extension, name, product" in error.message


def test_missing_required_field_names_the_path(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "extensions:\n  - extension: '1'\n    name: J\n")
    assert loaded.errors[0].code == "schema"
    assert "1st extension: the required key 'product' is missing" in loaded.errors[0].message
    assert loaded.errors[0].line == 4


def test_normalise_did() -> None:
    assert normalise_did("+44 20 7123-4500") == "442071234500"
    assert normalise_did("12094555948") == "12094555948"
