"""`reconciler fmt`: the canonical layout, comments kept, idempotent, and bad input left alone."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import FIXTURES, REPO, all_warnings, run_cli

MESSY = """\
# Acme's extensions. Ask reception before adding one.
version: 1
customer: {name: Acme, id: 100}   # billing customer 100
extensions:
    -   name: Alice            # front desk
        extension: 1
        product: Cloud PBX service
        dids: [ '+1 555 000-0001' ]
        addons: [Call recording]
    - {extension: 0466, name: "No", product: Cloud PBX service}
prune: false
"""

CANONICAL = """\
# Acme's extensions. Ask reception before adding one.
version: 1
customer:  # billing customer 100
  id: 100
  name: Acme
prune: false
extensions:
  - extension: "1"
    name: Alice                # front desk
    product: Cloud PBX service
    addons: [Call recording]
    dids: ["15550000001"]
  - extension: "0466"
    name: "No"
    product: Cloud PBX service
"""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def backend(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    assert run_cli("--backend", url, "state", "load", str(FIXTURES / "state.yaml")).code == 0
    return url


def test_fmt_writes_the_canonical_layout_keeping_comments_and_entry_order(tmp_path: Path) -> None:
    spec = tmp_path / "acme.yaml"
    spec.write_text(MESSY)
    result = run_cli("fmt", str(spec))
    assert result.code == 0, result
    assert f"reformatted {spec}" in result.out
    assert spec.read_text() == CANONICAL


def test_fmt_writes_a_did_as_digits_only_where_it_reads_as_one() -> None:
    """A DID with separators becomes its digits; one that is not a DID stays as written, for
    validate to point at (rewritten, it would become a different mistake)."""
    from reconciler.fmt import format_text

    text = ("version: 1\ncustomer: {id: 100, name: Acme}\nextensions:\n"
            "  - {extension: '1', name: A, product: P,\n"
            "     dids: ['+1 555 000-0001', '(555) 12', '15550000002', ' 1 (555) 000.0003']}\n")
    assert format_text(text, "acme.yaml").text.endswith(
        '    dids: ["15550000001", "(555) 12", "15550000002", "15550000003"]\n')


def test_fmt_is_idempotent(tmp_path: Path) -> None:
    spec = tmp_path / "acme.yaml"
    spec.write_text(MESSY)
    assert run_cli("fmt", str(spec)).code == 0
    once = spec.read_text()
    again = run_cli("fmt", str(spec))
    assert again.code == 0 and "reformatted" not in again.out
    assert spec.read_text() == once
    assert run_cli("fmt", "--check", str(spec)).code == 0


def test_fmt_check_changes_nothing_and_lists_the_files_it_would_change(tmp_path: Path) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "messy.yaml").write_text(MESSY)
    (folder / "tidy.yaml").write_text(CANONICAL.replace("id: 100", "id: 200"))
    before = {p.name: _digest(p) for p in folder.iterdir()}
    result = run_cli("fmt", "--check", str(folder))
    assert result.code == 1
    assert result.out.splitlines() == [f"would reformat {folder / 'messy.yaml'}"]
    assert {p.name: _digest(p) for p in folder.iterdir()} == before


def test_fmt_keeps_the_meaning_and_settles_the_did_warnings(backend: str, tmp_path: Path) -> None:
    spec = tmp_path / "acme.yaml"
    spec.write_text(MESSY.replace('"No"', "Eve"))
    before = run_cli("--backend", backend, "plan", str(spec), "--format", "json")
    assert {w["code"] for w in all_warnings(before.json)} >= {"did_normalised"}
    assert run_cli("fmt", str(spec)).code == 0
    after = run_cli("--backend", backend, "plan", str(spec), "--format", "json")
    assert after.json["customers"][0]["changes"] == before.json["customers"][0]["changes"]
    assert "did_normalised" not in {w["code"] for w in all_warnings(after.json)}


@pytest.mark.parametrize(
    ("text", "code", "why"),
    [
        ("version: 1\ncustomer:\n\tid: 100\n", "yaml_syntax", "a tab character"),
        ("version: 1\ncustomer: !!python/object:os.system {id: 1}\n", "yaml_refused",
         "is not allowed"),
        ("version: 1\nversion: 1\n", "duplicate_key", "appears twice"),
    ],
)
def test_fmt_leaves_a_file_it_cannot_read_unchanged_and_says_why(
    tmp_path: Path, text: str, code: str, why: str
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    tidy = tmp_path / "tidy.yaml"
    tidy.write_text(MESSY)
    result = run_cli("fmt", str(spec), str(tidy))
    assert result.code == 1
    assert spec.read_text() == text
    assert f"error[{code}] {spec}:" in result.out and why in result.out
    assert f"{spec}: not formatted (nothing was changed)" in result.out
    # The other file is still formatted: one bad file does not stop the run.
    assert tidy.read_text() == CANONICAL


def test_fmt_on_the_example_specs_keeps_their_plan(tmp_path: Path) -> None:
    copy = tmp_path / "specs"
    shutil.copytree(REPO / "specs", copy)
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    assert (
        run_cli("--backend", url, "state", "load", str(copy / "demo-billing-state.yaml")).code == 0
    )
    before = run_cli("--backend", url, "plan", str(copy / "customers"), "--format", "json")
    assert run_cli("fmt", str(copy / "customers")).code == 0
    after = run_cli("--backend", url, "plan", str(copy / "customers"), "--format", "json")
    assert [c["changes"] for c in after.json["customers"]] == [c["changes"]
                                                               for c in before.json["customers"]]
    assert run_cli("fmt", "--check", str(copy / "customers")).code == 0


def test_a_comment_written_above_a_key_stays_above_it_when_keys_are_reordered(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "acme.yaml"
    spec.write_text(
        "# Acme\n"
        "extensions:\n"
        "  - name: Alice\n"
        "    # the front desk's extension\n"
        "    extension: '1'\n"
        "    product: Cloud PBX service\n"
        "    addons: [Call recording]\n"
        "  # Bob joins in May\n"
        "  - {extension: '2', name: Bob, product: Cloud PBX service}\n"
        "# prune: the provider asked for it\n"
        "prune: true\n"
        "customer: {id: 100, name: Acme}\n"
        "# customer first, then the rest\n"
        "version: 1\n"
        "# end of file\n"
    )
    assert run_cli("fmt", str(spec)).code == 0
    lines = spec.read_text().splitlines()

    def above(key: str) -> str:
        return lines[
            next(i for i, line in enumerate(lines) if line.lstrip(" -").startswith(key)) - 1
        ].strip()

    assert lines[0] == "# Acme"
    assert above("version:") == "# customer first, then the rest"
    assert above("prune:") == "# prune: the provider asked for it"
    assert above("extension: \"1\"") == "# the front desk's extension"
    assert above("extension: \"2\"") == "# Bob joins in May"
    assert lines[-1] == "# end of file"
    assert [line.split(":")[0] for line in lines if line and line[0].isalpha()] == [
        "version", "customer", "prune", "extensions"
    ]
    assert run_cli("fmt", "--check", str(spec)).code == 0


def test_fmt_formats_a_file_missing_parts_of_a_spec(tmp_path: Path) -> None:
    # fmt is about layout: a file that validate would reject for a missing key is still tidied.
    spec = tmp_path / "partial.yaml"
    spec.write_text("extensions:\n    - {name: A, extension: 7}\nversion: 1\n")
    result = run_cli("fmt", str(spec))
    assert result.code == 0, result
    assert spec.read_text() == 'version: 1\nextensions:\n  - extension: "7"\n    name: A\n'


_LINES = (REPO / "specs" / "customers" / "abc.yaml").read_text().splitlines()


@settings(max_examples=40, deadline=None)
@given(
    comments=st.lists(
        st.tuples(st.integers(0, len(_LINES)), st.sampled_from([0, 2, 4, 6]), st.integers(0, 99)),
        max_size=4,
    ),
    flow=st.booleans(),
    reverse=st.booleans(),
)
def test_fmt_keeps_every_comment_and_is_idempotent_whatever_the_layout(
    comments: list[tuple[int, int, int]], flow: bool, reverse: bool
) -> None:
    from reconciler.fmt import format_text

    lines = list(_LINES)
    if reverse:  # the top-level sections in reverse order
        lines = [lines[0], *lines[lines.index("extensions:"):],
                 *lines[1:lines.index("extensions:")]]
    text = "\n".join(lines) + "\n"
    if flow:
        text = text.replace("customer:\n  id: 46170\n  name: ABC\n",
                            "customer: {name: ABC, id: 46170}\n")
    lines = text.splitlines()
    for at, column, number in sorted(comments, reverse=True):
        lines.insert(at, " " * column + f"# note {number}")
    text = "\n".join(lines) + "\n"
    once = format_text(text, "abc.yaml")
    if once.problems:  # a comment line that breaks a flow mapping: left alone, never a crash
        assert once.text is None
        return
    assert once.text is not None
    assert sorted(re.findall(r"# note \d+", once.text)) == sorted(re.findall(r"# note \d+", text))
    twice = format_text(once.text, "abc.yaml")
    assert twice.text == once.text
