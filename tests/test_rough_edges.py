"""What trips a new user up: one test per rough edge found by trying the tool as a newcomer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, REPO, all_problems, run_cli


@pytest.fixture
def backend(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    loaded = run_cli("--backend", url, "state", "load", str(FIXTURES / "state.yaml"))
    assert loaded.code == 0, loaded
    return url


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


HEAD = "version: 1\ncustomer:\n  id: 100\n  name: Acme\n"


# ---- a syntax error hides nothing else --------------------------------------------------------


@pytest.mark.parametrize(
    ("broken", "said"),
    [
        ("\tname: Tab\n",
         "a tab character is used to indent this line; YAML indents with spaces only "
                          "(replace the tab with spaces)"),
        ("    name: Sales: 2nd floor\n",
         "a value that holds ': ' must be quoted (YAML reads the ':' "
                                         'as the start of another key): name: "Sales: 2nd floor"'),
    ],
)
def test_a_syntax_error_does_not_hide_the_other_problems_of_the_file(
    backend: str, tmp_path: Path, broken: str, said: str
) -> None:
    path = _write(
        tmp_path,
        HEAD + "extensions:\n"
        "  - extension: '1'\n" + broken + "    product: Cloud PBX servce\n"
        "  - extension: '2'\n    nme: Bob\n    product: Cloud PBX service\n    dids: ['12']\n",
    )
    result = run_cli("--backend", backend, "validate", str(path), "--format", "json")
    assert result.code == 1
    got = [(p["code"], p["line"]) for p in all_problems(result.json)]
    assert got == [("yaml_syntax", 7), ("unknown_product", 8), ("schema", 10), ("schema", 12)], got
    syntax = all_problems(result.json)[0]["message"]
    assert syntax.endswith(said), syntax
    assert "[" not in syntax  # no raw parser wording in brackets
    # Still an error: nothing of a file with a syntax error is ever planned.
    plan = run_cli("--backend", backend, "plan", str(path), "--format", "json")
    assert plan.code == 1 and plan.json["summary"]["changes"] == 0


def test_several_syntax_errors_are_each_reported(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        HEAD + "extensions:\n"
        "  - extension: '1'\n\tname: A\n    product: P\n"
        "  - extension: '2'\n    name: @home\n    product: P\n"
        "  - extension: '3'\n    name: B: c\n    product: P\n    blocked: maybe\n",
    )
    result = run_cli("validate", "--offline", str(path), "--format", "json")
    got = [(p["code"], p["line"]) for p in all_problems(result.json)]
    assert got == [("yaml_syntax", 7), ("yaml_syntax", 10), ("yaml_syntax", 13), ("schema", 15)], (
        got
    )


# ---- the empty file ------------------------------------------------------------------------


def test_the_empty_file_message_matches_the_guide(tmp_path: Path) -> None:
    path = _write(tmp_path, "# nothing yet\n")
    result = run_cli("validate", "--offline", str(path))
    assert result.code == 1
    assert (
        f"error[schema] {path}: the file is empty: a spec needs at least version and customer "
        "(extensions and auto_attendants may be left out)"
    ) in result.out
    guide = (REPO / "docs" / "specs.md").read_text()
    assert (
        "`version` and `customer` are required; `extensions` and `auto_attendants` may be left out"
        in guide
    )


# ---- no import circle ------------------------------------------------------------------------


def _imports(module: str) -> set[str]:
    """Every reconciler module ``module`` imports, at the top or inside a function."""
    source = (REPO / (module.replace(".", "/") + ".py")).read_text()
    found = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("reconciler")
        ):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("reconciler"))
    return found


def _reaches(start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module == goal:
            return True
        if module in seen or not (REPO / (module.replace(".", "/") + ".py")).exists():
            continue
        seen.add(module)
        todo.extend(_imports(module))
    return False


def test_the_yaml_loader_does_not_import_the_messages_module() -> None:
    assert "reconciler.yamlload" in _imports("reconciler.messages")
    assert not _reaches("reconciler.yamlload", "reconciler.messages")


# ---- a bad extension hides nothing of its DIDs -------------------------------------------------


def test_a_bad_extension_number_does_not_hide_the_did_checks_of_its_entry(backend: str,
                                                                          tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        HEAD + "extensions:\n"
        '  - extension: "4 66"\n    name: Sales\n    product: Cloud PBX service\n'
        '    dids: ["123", "15550000201", "+1 555 000 0002", "15550000002", "15550000001"]\n',
    )
    result = run_cli("--backend", backend, "validate", str(path), "--format", "json")
    assert result.code == 1
    got = [(p["code"], p["column"]) for p in all_problems(result.json)]
    # Not a DID; another customer's pool; written twice. 15550000001 is held by an account of the
    # customer, perhaps the very one the entry means: nothing is said of it.
    assert got == [("schema", 16), ("schema", 12), ("did_not_owned", 19), ("did_duplicate", 53)], (
        got
    )
    assert [w["code"] for w in result.json["customers"][0]["warnings"]] == ["did_normalised"]


# ---- entries are counted from one ------------------------------------------------------------


def test_messages_count_entries_from_one(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        HEAD + "extensions:\n"
        "  - {extension: '1', name: A, product: P}\n"
        "  - {extension: '2', nme: B, product: P, dids: ['15550000001', 'abc']}\n",
    )
    result = run_cli("validate", "--offline", str(path))
    assert "2nd extension, nme: unknown key 'nme'; did you mean 'name'?" in result.out
    assert "2nd extension, 2nd DID: 'abc' is not a DID" in result.out
    assert "extensions[1]" not in result.out
    guide = (REPO / "docs" / "specs.md").read_text()
    assert "counting from one" in guide and "extensions[" not in guide


def test_an_unknown_product_lists_the_products_billing_has_closest_first(backend: str,
                                                                         tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        HEAD + "extensions:\n"
        "  - {extension: '11', name: A, product: Cloud PBX service, addons: [Conference bridge]}\n"
        "  - {extension: '12', name: B, product: Hotdsk}\n"
        "  - {extension: '13', name: C, product: Desk phone}\n",
    )
    result = run_cli("--backend", backend, "validate", str(path), "--format", "json")
    messages = [p["message"] for p in all_problems(result.json)]
    assert messages == [
        "no product named 'Conference bridge' "
        "(add-on products in billing: Call recording, Fax to email)",
        "no product named 'Hotdsk'; did you mean 'Hotdesk'? "
        "(other main products in billing: Auto attendant, Cloud PBX service)",
        "no product named 'Desk phone' "
        "(main products in billing: Hotdesk, Cloud PBX service, Auto attendant)",
    ], messages


def test_the_list_of_products_is_bounded() -> None:
    from reconciler.diff import _products_like
    from reconciler.model import Catalogue, Product

    catalogue = Catalogue(tuple(Product(i, f"Plan {i:02}", "main") for i in range(1, 41)))
    said = _products_like("Plan 7", catalogue, "main", but=[])
    assert said.startswith(" (main products in billing: Plan 07, ") and said.endswith(
        " and 35 more)"
    )


# ---- what the README's steps write is ignored by git ------------------------------------------


def test_the_files_the_readme_steps_write_are_ignored_by_git() -> None:
    import re
    import subprocess

    readme = (REPO / "README.md").read_text()
    written = set(re.findall(r"--out (\S+)", readme.split("## The customer spec at a glance")[0]))
    written |= {".reconciler/billing.db", ".reconciler/logs/crash.log", "applied-plan.json",
                "plan-1.json"}
    assert "plan.json" in written
    for name in sorted(written):
        ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", name],
                                 check=False)
        assert ignored.returncode == 0, f"{name} is not in .gitignore"


# ---- doctor and a mistyped path ----------------------------------------------------------------


def test_doctor_with_a_mistyped_spec_path_is_an_error(tmp_path: Path) -> None:
    from reconciler.emulator import EmulatorServer
    from reconciler.statefile import load_state_file

    state = load_state_file(str(REPO / "specs" / "demo-billing-state.yaml"))
    with EmulatorServer(state, login="api", password="pw") as server:
        result = run_cli("--backend", server.url, "doctor", str(tmp_path / "customrs"),
                         env={"PORTABILLING_LOGIN": "api", "PORTABILLING_PASSWORD": "pw"})
        assert result.code == 1, result
        assert f"error: {tmp_path / 'customrs'}: no such file or folder" in result.err
        assert result.out == ""  # nothing was checked
        assert server.call_counts.get("Session/login", 0) == 0


# ---- fmt and what it is given ------------------------------------------------------------------


def test_an_exported_spec_passes_the_format_check(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    assert (
        run_cli(
            "--backend", url, "state", "load", str(REPO / "specs" / "demo-billing-state.yaml")
        ).code
        == 0
    )
    for customer in ("46170", "51234", "60001"):
        out = tmp_path / f"{customer}.yaml"
        assert (
            run_cli("--backend", url, "export", "--customer", customer, "--out", str(out)).code == 0
        )
        check = run_cli("fmt", "--check", str(out))
        assert check.code == 0, check
        assert "dids: [" in out.read_text() or "dids" not in out.read_text()


def test_the_shipped_example_specs_pass_the_format_check() -> None:
    result = run_cli("fmt", "--check", str(REPO / "specs" / "customers"))
    assert result.code == 0, result


def test_fmt_keeps_crlf_on_every_line_and_the_byte_order_mark(tmp_path: Path) -> None:
    spec = tmp_path / "win.yaml"
    text = ("# written on Windows\r\nversion: 1\r\ncustomer: {id: 100, name: Acme}  # c\r\n"
            "extensions:\r\n  # the first\r\n  - {extension: 1, name: A, product: P}\r\n")
    spec.write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = run_cli("fmt", str(spec))
    assert result.code == 0, result
    written = spec.read_bytes()
    assert written.startswith(b"\xef\xbb\xbf")
    body = written[3:].decode()
    assert body.count("\r\n") == body.count("\n") == 10, body
    assert body == ("# written on Windows\r\nversion: 1\r\ncustomer:  # c\r\n"
                    "  id: 100\r\n  name: Acme\r\n"
                    'extensions:\r\n  # the first\r\n  - extension: "1"\r\n'
                    "    name: A\r\n    product: P\r\n"), body
    assert run_cli("fmt", "--check", str(spec)).code == 0


def test_a_comment_after_a_flow_entry_stays_close_to_its_line(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(HEAD + "extensions:\n"
                    "  - {extension: '466', name: John Doe, product: Cloud PBX service, addons: "
                    "[Call recording]}  # John\n")
    assert run_cli("fmt", str(spec)).code == 0
    assert "    addons: [Call recording]  # John\n" in spec.read_text()


def test_fmt_quotes_a_text_value_yaml_would_read_as_a_boolean_or_a_number(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("version: 1\ncustomer:\n  id: 100\n  name: No\nextensions:\n"
                    "  - extension: '1'\n    name: yes\n    product: 1234\n    addons: [On, Call "
                    "recording]\n")
    assert run_cli("validate", "--offline", str(spec)).code == 1
    result = run_cli("fmt", str(spec))
    assert result.code == 0, result
    assert spec.read_text() == ('version: 1\ncustomer:\n  id: 100\n  name: "No"\nextensions:\n'
                                '  - extension: "1"\n    name: "yes"\n    product: "1234"\n'
                                '    addons: ["On", Call recording]\n')
    valid = run_cli("validate", "--offline", str(spec))
    assert valid.code == 0, valid


# ---- a reader that leaves early -----------------------------------------------------------------


@pytest.fixture
def big_plan(backend: str, tmp_path: Path) -> tuple[str, Path]:
    """A spec creating 3,000 extensions: every format's plan is far larger than a pipe's buffer."""
    spec = tmp_path / "many.yaml"
    spec.write_text(HEAD + "extensions:\n" + "".join(
        f"  - {{extension: '{n}', name: Person {n}, product: Cloud PBX service}}\n"
        for n in range(1000, 4000)))
    return backend, spec


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_a_plan_piped_into_head_is_quiet_and_exits_as_the_plan_decides(
    big_plan: tuple[str, Path], fmt: str
) -> None:
    import subprocess

    from tests.reliability_support import clean_env, reconciler_argv

    backend, spec = big_plan
    for extra, code in (((), 0), (("--detailed-exitcode",), 2)):
        proc = subprocess.Popen(
            reconciler_argv("--backend", backend, "plan", str(spec), "--format", fmt, *extra),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(),
        )
        assert proc.stdout is not None and proc.stderr is not None
        head = [proc.stdout.readline() for _ in range(3)]  # `| head -3`
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == code, err
        assert all(head) and err == "", err


# ---- a plan with errors counts no refused change -------------------------------------------------


def test_a_plan_with_errors_does_not_count_refused_changes_and_says_the_customer_is_skipped(
    backend: str, tmp_path: Path
) -> None:
    path = _write(
        tmp_path,
        HEAD + "extensions:\n"
        "  - {extension: '11', name: A, product: Cloud PBX service, addons: [Call recording]}\n"
        "  - {extension: '12', name: B, product: Cloud PBX service, addons: [Call recording]}\n"
        "  - {extension: '13', name: C, product: Hotdsk}\n",
    )
    text = run_cli("--backend", backend, "plan", str(path))
    assert text.code == 1
    assert "  skipped: apply changes nothing for this customer until the errors below are fixed; " \
           "the spec asks for these 3 change(s):" in text.out
    assert text.out.splitlines()[-1] == (
        "Plan: 0 change(s) for 1 customer(s) (1 skipped because of errors, 3 change(s) held back), "
        "2 error(s), 2 warning(s)."
    )
    data = run_cli("--backend", backend, "plan", str(path), "--format", "json").json
    assert data["summary"]["changes"] == 0
    assert (data["summary"]["skipped_customers"], data["summary"]["refused_changes"]) == (1, 3)
    customer = data["customers"][0]
    assert customer["skipped"] is True and len(customer["changes"]) == 3  # shown for review
    markdown = run_cli("--backend", backend, "plan", str(path), "--format", "markdown").out
    assert "**1 customer · 0 changes · 2 errors · 2 warnings**" in markdown
    assert "(1 customer skipped, 3 changes held back)" in markdown
    assert "3 changes held back (skipped)" in markdown
    # apply agrees: nothing to apply, and it says so.
    applied = run_cli("--backend", backend, "apply", str(path), "--auto-approve")
    assert applied.code == 1 and "Nothing to apply." in applied.out


# ---- apply --plan records the commit the plan was made from --------------------------------------


def test_apply_of_a_saved_plan_records_the_commit_the_specs_were_at_when_planned(
    backend: str, tmp_path: Path
) -> None:
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    spec = repo / "specs" / "acme.yaml"
    spec.write_text(HEAD
                    + "extensions:\n  - {extension: '11', name: A, product: Cloud PBX service}\n")
    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "specs")
    planned_at = git("rev-parse", "HEAD")
    saved = tmp_path / "plan.json"
    assert run_cli("--backend", backend, "plan", str(repo / "specs"), "--out", str(saved)).code == 0
    # The repository moves on before the saved plan is applied: the plan is still of the old commit.
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "later",
        "--allow-empty")
    applied = run_cli("--backend", backend, "apply", "--plan", str(saved))
    assert applied.code == 0, applied
    history = run_cli("--backend", backend, "history", "--format", "json").json
    assert [entry["git_commit"] for entry in history] == [planned_at]


# ---- the emulator in a script's background -------------------------------------------------------


def test_an_emulator_started_in_a_scripts_background_stops_on_sigint(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.reliability_support import clean_env

    script = f"""
{sys.executable} -m reconciler emulator --state {REPO / "specs" / "demo-billing-state.yaml"} \\
  --port 0 2>{tmp_path / "err"} &
pid=$!
for _ in $(seq 200); do grep -q 'emulator serving' {tmp_path / "err"} && break; sleep 0.05; done
kill -INT $pid
for _ in $(seq 200); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
if kill -0 $pid 2>/dev/null; then kill -KILL $pid; echo still-running; fi
wait $pid; echo "exit $?"
"""
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                          env=clean_env())
    said = (tmp_path / "err").read_text()
    assert "emulator serving" in said, said
    assert "still-running" not in done.stdout and "exit 0" in done.stdout, done.stdout
    assert "PortaBilling emulator stopped" in said, said


# ---- the help text -------------------------------------------------------------------------------


def _every_command() -> list[tuple[str, object]]:
    import click

    from reconciler.cli import cli

    found: list[tuple[str, object]] = []
    for name, command in cli.commands.items():
        found.append((name, command))
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", c) for sub, c in command.commands.items()]
    return found


def test_customer_is_one_type_on_every_command_and_zero_is_refused(backend: str) -> None:
    from reconciler.cli.common import CUSTOMER_ID

    takers = [
        name
        for name, command in _every_command()
        for param in command.params
        if param.name in ("customers", "customer_id")
    ]  # type: ignore[attr-defined]
    assert {"validate", "plan", "apply", "adopt", "export", "history", "doctor"} <= set(takers)
    for name, command in _every_command():
        for param in command.params:  # type: ignore[attr-defined]
            if "--customer" in getattr(param, "opts", ()):
                assert param.type is CUSTOMER_ID, name
    for args in (("history", "--customer", "0"), ("export", "--customer", "-3"),
                 ("plan", "x", "--customer", "a")):
        result = run_cli("--backend", backend, *args)
        assert (
            result.code == 1
            and "is not a customer id (i_customer: a whole number, 1 or more)" in result.err
        ), result


def test_every_option_has_help_and_no_command_summary_is_cut_short() -> None:
    for name, command in _every_command():
        for param in command.params:  # type: ignore[attr-defined]
            if getattr(param, "opts", None) and param.param_type_name == "option":
                assert param.help, f"{name} {param.opts[0]} has no help"
    for args in ((), ("state",)):
        listing = run_cli(*args, "--help", env={"COLUMNS": "80"}).out
        commands = listing.split("Commands:")[1]
        assert "..." not in commands and "…" not in commands, commands
    port = run_cli("emulator", "--help").out
    assert "0 picks a free one" in port
    doctor = run_cli("doctor", "--help").out
    assert "PATHS (optional) are spec files or folders" in doctor


def test_the_readme_lists_the_options_of_adopt() -> None:
    readme = (REPO / "README.md").read_text()
    assert (
        "| `adopt PATH… [--customer ID] [--shard I/N] [--format text\\|markdown\\|json]` |"
        in readme
    )


def test_an_export_of_awkward_names_is_canonical_and_reads_back_the_same(tmp_path: Path) -> None:
    from reconciler.export import export_spec
    from reconciler.fmt import format_text
    from reconciler.model import Account, Catalogue, Customer, CustomerState, Product
    from reconciler.spec import load_spec

    names = ["No", "123", "a: b", "#x", "Zoë O'Brien", "  lead", "-dash", "[x]", "null", "~", "yes",
             "0755", "@home", "*star", "!bang", "x #y", '"q"']
    accounts = tuple(Account(f"ph1x{100 + i}", 1, name, "Cloud PBX service",
                             ("Call recording",) if i % 2 else (), (f"1555{i:07}",))
                     for i, name in enumerate(names))
    state = CustomerState(Customer(1, "Ac: me", True, (), frozenset()), accounts,
                          Catalogue((Product(1, "Cloud PBX service", "main"),
                                     Product(2, "Call recording", "addon"))))
    text = export_spec(state)
    assert format_text(text, "x").text == text
    spec = tmp_path / "s.yaml"
    spec.write_text(text)
    loaded = load_spec(str(spec))
    assert loaded.spec is not None, loaded.errors
    assert [a.name for a in loaded.spec.accounts] == names
