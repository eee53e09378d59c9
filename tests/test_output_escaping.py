"""Nothing from a spec, a file name or billing can forge output (SPEC "Tenants and trust").

A hostile editor or a name in billing tries to write GitHub workflow commands (a line starting
with ``::``, or ``##[`` anywhere), terminal escapes (ESC), bidi overrides and line separators
into what the reconciler prints. Every test looks at the exact bytes printed: the only lines
starting with ``::`` are the reconciler's own annotations, one per problem, and no unsafe
character is printed raw.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

from reconciler.render import safe
from reconciler.render.annotations import github_annotations
from reconciler.render.markdown import render_markdown_parts
from tests.conftest import Billing, write
from tests.helpers import Result

ESC = "\x1b"
# Billing's names: a screen clear, a forged workflow command after a line break, a bidi override,
# a line separator, NEL, and the legacy command form that the runner finds anywhere in a line.
BILLING_CUSTOMER = f"Acme{ESC}[2J\n::warning::billing-customer"
BILLING_ACCOUNT = "Al\u202eice\u2028::add-mask::sekrit ##[add-mask]x\x85y"
# The spec's own: a new extension whose name sets the terminal title and forges a command.
SPEC_EXTENSION = f"Bob\r\n::error::spec-extension{ESC}]0;title\x07 \u2066rtl\u2069"


def _state(path: Path) -> Path:
    billing_state = {
        "products": [
            {"id": 1, "name": "Cloud PBX service", "type": "main"},
            {"id": 3, "name": "Call recording", "type": "addon"},
        ],
        "customers": [{"id": 100, "name": BILLING_CUSTOMER,
                       "agreement": [{"product": "Cloud PBX service", "quantity": 0}],
                       "dids": ["15550000001"]}],
        "accounts": [{"id": "ph100x1", "customer": 100, "name": BILLING_ACCOUNT,
                      "product": "Cloud PBX service"}],
    }
    path.write_text(yaml.safe_dump(billing_state, allow_unicode=False))
    return path


def _spec(extra: str = "") -> str:
    document = {
        "version": 1,
        "customer": {"id": 100, "name": BILLING_CUSTOMER},
        "extensions": [
            {"extension": "1", "name": "Alice", "product": "Cloud PBX service"},
            {"extension": "2", "name": SPEC_EXTENSION, "product": "Cloud PBX service"},
        ],
    }
    return yaml.safe_dump(document, allow_unicode=False, sort_keys=False) + extra


@pytest.fixture
def hostile(billing: Billing, workdir: Path) -> Billing:
    billing.load(_state(workdir / "hostile-state.yaml"))
    write(workdir / "hostile" / "acme.yaml", _spec())
    return billing


def _output_lines(result: Result) -> list[str]:
    return (result.out + result.err).split("\n")


def assert_unforgeable(result: Result, *, annotations: int = 0) -> None:
    """No raw unsafe character or ``##[`` anywhere; exactly ``annotations`` lines start with
    ``::``, each one of the reconciler's own (``::error``/``::warning`` with a problem code)."""
    shown = result.out + result.err
    raw = safe._UNSAFE.findall(shown.replace("\n", ""))
    assert not raw, f"raw unsafe characters {raw!r} printed\n{result}"
    assert "##[" not in shown, str(result)
    commands = [line for line in _output_lines(result) if line.lstrip().startswith("::")]
    own = re.compile(r"::(error|warning) (file=[^,]*,)?(line=\d+,)?(col=\d+,)?title=[a-z_]+::")
    assert all(own.match(line) for line in commands), commands
    assert len(commands) == annotations, commands


# ------------------------------------------------------------------------ the escaping itself


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, café, 日本語, 👨\u200d👩", "plain text, café, 日本語, 👨\u200d👩"),
        ("k\n::warning::x", "k\\n::warning::x"),
        ("\r\t", "\\r\\t"),
        (f"{ESC}[31mred", "\\x1b[31mred"),
        ("a\x7fb\x85c\x9bd", "a\\x7fb\\x85c\\x9bd"),
        ("\u202eevil\u202c \u2066x\u2069 \u200e\u200f\u061c",
         "\\u202eevil\\u202c \\u2066x\\u2069 \\u200e\\u200f\\u061c"),
        ("line\u2028sep\u2029para", "line\\u2028sep\\u2029para"),
        ("::add-mask::secret", "\\::add-mask::secret"),
        ("  ::warning::x", "  \\::warning::x"),
        ("a ::b", "a ::b"),
        ("x ##[add-mask]y", "x #\\#[add-mask]y"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("bad\udcffbyte", "bad\\udcffbyte"),
    ],
)
def test_text_makes_each_kind_of_character_visible(raw: str, shown: str) -> None:
    assert safe.text(raw) == shown
    assert safe.text(shown) == shown  # idempotent: escaping twice changes nothing


def test_the_character_class_covers_this_pythons_unicode_tables() -> None:
    wanted = {"Cc", "Cf", "Zl", "Zp", "Cs"}
    missed = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in wanted
        and chr(code) not in "\u200c\u200d"
        and not safe._UNSAFE.match(chr(code))
    ]
    assert not missed
    assert not safe._UNSAFE.search("\u200c\u200d\u00a0 é")


def test_json_keeps_its_meaning_and_loses_the_raw_characters() -> None:
    data = {"name": BILLING_ACCOUNT, "other": [SPEC_EXTENSION, "é \u00a0", "tag\U000e0041"]}
    text = safe.json_chunk(json.dumps(data, ensure_ascii=False, indent=2))
    assert json.loads(text) == data
    assert not safe._UNSAFE.search(text.replace("\n", "")) and "##[" not in text


def test_yaml_keeps_its_meaning_and_loses_the_raw_characters() -> None:
    data = {"a": BILLING_ACCOUNT, "b": "Müller", "c": ["7", SPEC_EXTENSION]}
    text = yaml.dump(data, Dumper=safe.SafeTextDumper, allow_unicode=True)
    assert yaml.safe_load(text) == data
    assert not safe._UNSAFE.search(text.replace("\n", ""))
    assert "b: Müller" in text  # harmless letters stay as they are


def test_annotations_use_githubs_escaping_and_show_the_rest() -> None:
    problem = {"code": "schema", "file": "x::add-mask::y\n.yaml", "line": 3, "column": 1,
               "message": f"k\n::warning::x{ESC}[31m ##[stop-commands]t \u202e"}
    plan = {"customers": [], "errors": [problem]}
    (line,) = github_annotations(plan)
    assert line == (
        "::error file=x%3A%3Aadd-mask%3A%3Ay%0A.yaml,line=3,col=1,title=schema::"
        "k%0A::warning::x\\x1b[31m #\\#[stop-commands]t \\u202e"
    )


# ------------------------------------------------------------------------------ Markdown


def _plan_with(name: str, message: str) -> dict:
    return {
        "format_version": 1,
        "backend": "portabilling+https://billing.internal.example:8443",
        "customers": [{
            "customer": 100, "name": name, "file": "specs/a.yaml", "fingerprint": "sha256:x",
            "changes": [{"op": "create_account", "account": "ph100x2", "kind": "extension",
                         "name": name, "product": "Cloud PBX service", "addons": [],
                         "blocked": False}],
            "errors": [{"code": "schema", "message": message, "file": "specs/a.yaml", "line": 1,
                        "column": 1}],
            "warnings": [], "usage": [],
        }],
        "errors": [],
        "summary": {"customers": 1, "changes": 1, "errors": 1, "warnings": 0},
    }


def test_markdown_cannot_forge_a_part_marker_or_close_a_section() -> None:
    forged = "x -->\n<!-- reconciler:part 2/2 -->\n</details></summary>\n```\n# Approved"
    parts = render_markdown_parts(_plan_with(forged, forged))
    assert len(parts) == 1
    (part,) = parts
    assert part.count("<!--") == 1 and part.startswith("<!-- reconciler:part 1/1 -->\n")
    assert part.count("</details>") == part.count("<details") == 1
    assert "```" not in part and "\n# " not in part
    assert "&lt;&#33;-- reconciler:part 2/2 --&gt;" in part


def test_markdown_cannot_inject_links_images_html_or_mentions() -> None:
    name = ("[click](https://evil.example) ![img](https://evil.example/i.png) <img src=x> "
            "@org/team www.evil.example")
    (part,) = render_markdown_parts(_plan_with(name, name))
    for forged in ("](", "<img", "@org", "https://", "www.evil"):
        assert forged not in part, forged


def test_markdown_makes_terminal_characters_visible() -> None:
    (part,) = render_markdown_parts(_plan_with(BILLING_ACCOUNT, SPEC_EXTENSION))
    assert not safe._UNSAFE.search(part.replace("\n", ""))
    assert "##[" not in part and not any(line.startswith("::") for line in part.splitlines())
    assert "Al&#92;u202eice&#92;u2028::add-mask::sekrit" in part


def test_markdown_names_no_backend_host() -> None:
    (part,) = render_markdown_parts(_plan_with("Acme", "fine"))
    assert "billing.internal.example" not in part and "8443" not in part


# -------------------------------------------------------------------- through the command line


def test_plan_text_escapes_names_from_the_spec_and_from_billing(hostile: Billing) -> None:
    result = hostile.cli("plan", "hostile")
    assert result.code == 0, result
    assert_unforgeable(result)
    lines = result.out.split("\n")
    assert "Customer 100 Acme\\x1b[2J\\n::warning::billing-customer (hostile/acme.yaml)" in lines
    assert ("  ~ ph100x1: name 'Al\\u202eice\\u2028::add-mask::sekrit #\\#[add-mask]x\\x85y' "
            "-> 'Alice'"
            in lines)
    assert ("  + create extension ph100x2 'Bob\\r\\n::error::spec-extension\\x1b]0;title\\x07 "
            "\\u2066rtl\\u2069' (Cloud PBX service)") in lines


def test_plan_json_keeps_the_names_exactly(hostile: Billing) -> None:
    result = hostile.cli("plan", "hostile", "--format", "json")
    assert result.code == 0, result
    assert_unforgeable(result)
    changes = result.json["customers"][0]["changes"]
    assert {
        "op": "set_name",
        "account": "ph100x1",
        "from": BILLING_ACCOUNT,
        "to": "Alice",
    } in changes
    assert any(change.get("name") == SPEC_EXTENSION for change in changes)


def test_plan_markdown_escapes_and_names_no_backend(hostile: Billing) -> None:
    result = hostile.cli("plan", "hostile", "--format", "markdown", "--out", "saved.json")
    assert result.code == 0, result
    assert_unforgeable(result)
    assert result.out.count("<!--") == 1
    shown = hostile.cli("show", "saved.json", "--format", "markdown")
    assert shown.code == 0 and shown.out == result.out
    host = hostile.url.split("://", 1)[1].split("/", 1)[0]  # "" for a database file
    for output in (result.out, shown.out):
        assert hostile.url not in output and not (host and host in output)
    # The saved plan (for machines and operators) still names its backend, as SPEC says.
    assert json.loads(Path("saved.json").read_text())["backend"] == hostile.url


def test_apply_history_and_export_escape_billings_names(hostile: Billing) -> None:
    applied = hostile.cli("apply", "hostile", "--auto-approve")
    assert applied.code == 0, applied
    assert_unforgeable(applied)
    history = hostile.cli("history")
    assert history.code == 0, history
    assert_unforgeable(history)
    assert "\\::error::" not in history.out and "spec-extension\\x1b]0;title\\x07" in history.out
    exported = hostile.cli("export", "--customer", "100")
    assert exported.code == 0, exported
    assert_unforgeable(exported)
    assert (
        "# Exported from billing: customer 100 (Acme\\x1b[2J\\n::warning::billing-customer)."
        in exported.out
    )
    document = yaml.safe_load(exported.out)
    assert document["customer"]["name"] == BILLING_CUSTOMER
    assert SPEC_EXTENSION in [e["name"] for e in document["extensions"]]


def test_a_key_cannot_write_a_workflow_command(hostile: Billing, workdir: Path) -> None:
    write(workdir / "hostile" / "acme.yaml", _spec('"k\\n::warning::x": 1\n"##[add-mask]k": 2\n'))
    hostile.env["GITHUB_ACTIONS"] = "true"
    for command in (("validate", "hostile"), ("plan", "hostile"),
                    ("validate", "--offline", "hostile")):
        result = hostile.cli(*command)
        assert result.code == 1, result
        assert_unforgeable(result, annotations=2)
        assert "k\\n::warning::x: unknown key 'k\\n::warning::x'" in result.out
        assert "title=schema::k%0A::warning::x: unknown key" in result.err


def test_a_file_name_cannot_write_a_workflow_command(sqlite_billing: Billing,
                                                     workdir: Path) -> None:
    sqlite_billing.load(_state(workdir / "hostile-state.yaml"))
    bad = "version: 1\ncustomer: {id: 100, name: x\n"  # a YAML syntax error: nothing formats it
    write(workdir / "::add-mask::y.yaml", bad)
    write(workdir / "names" / "x\n::warning::f ##[add-mask]z.yaml", bad)
    sqlite_billing.env["GITHUB_ACTIONS"] = "true"
    for command in (("fmt", "::add-mask::y.yaml", "names"),
                    ("validate", "--offline", "::add-mask::y.yaml", "names"),
                    ("plan", "::add-mask::y.yaml", "names"),
                    ("adopt", "::add-mask::y.yaml", "names")):
        result = sqlite_billing.cli(*command)
        assert result.code == 1, result
        assert_unforgeable(result, annotations=2 if command[0] in ("validate", "plan") else 0)
        assert "names/x\\n::warning::f #\\#[add-mask]z.yaml" in result.out + result.err, result
    fmt = sqlite_billing.cli("fmt", "::add-mask::y.yaml")
    assert "\\::add-mask::y.yaml: not formatted (nothing was changed)" in fmt.out.split("\n")


def test_a_missing_path_is_named_escaped(sqlite_billing: Billing) -> None:
    sqlite_billing.load(_state(Path("hostile-state.yaml")))
    result = sqlite_billing.cli("plan", "x\n::warning::y\x1b[2J")
    assert result.code == 1
    assert_unforgeable(result)
    assert "x\\n::warning::y\\x1b[2J" in result.err


def test_state_dump_escapes_billings_names(sqlite_billing: Billing, workdir: Path) -> None:
    sqlite_billing.load(_state(workdir / "hostile-state.yaml"))
    for fmt in ("yaml", "json"):
        result = sqlite_billing.cli("state", "dump", "--format", fmt)
        assert result.code == 0, result
        assert_unforgeable(result)
        data = yaml.safe_load(result.out)  # JSON is YAML too
        assert data["customers"][0]["name"] == BILLING_CUSTOMER
        assert data["accounts"][0]["name"] == BILLING_ACCOUNT


def test_adopt_and_fmt_write_billings_names_with_escapes(hostile: Billing, workdir: Path) -> None:
    spec = workdir / "hostile" / "acme.yaml"
    spec.write_text(_spec().replace("name: Alice", "name: Old name"))
    markdown = hostile.cli("adopt", "hostile", "--format", "markdown")
    assert markdown.code == 0, markdown
    assert_unforgeable(markdown)
    assert "Al&#92;u202eice&#92;u2028::add-mask::sekrit" in markdown.out
    spec.write_text(_spec().replace("name: Alice", "name: Old name"))
    adopted = hostile.cli("adopt", "hostile")
    assert adopted.code == 0, adopted
    assert_unforgeable(adopted)
    assert "Al\\u202eice\\u2028::add-mask::sekrit #\\#[add-mask]x\\x85y" in adopted.out
    written = spec.read_text()
    assert not safe._UNSAFE.search(written.replace("\n", "")) and "##[" not in written
    names = [e["name"] for e in yaml.safe_load(written)["extensions"]]
    assert names == [BILLING_ACCOUNT]  # extension 2 is not in billing: adopt removed it
    formatted = hostile.cli("fmt", "hostile")
    assert formatted.code == 0, formatted
    assert (
        not safe._UNSAFE.search(spec.read_text().replace("\n", ""))
        and "##[" not in spec.read_text()
    )
    assert [e["name"] for e in yaml.safe_load(spec.read_text())["extensions"]] == names
    assert hostile.cli("plan", "hostile", "--detailed-exitcode").code == 0  # nothing left to do
