"""Hostile input: each spec is refused (or handled) with a clear message, in bounded time and
memory.

Every case runs `reconciler apply PATH --auto-approve` in its own process against a loaded
database and must end with exit 1 (exit 0 where "handled" means "nothing to refuse"), no
traceback, billing unchanged, within TIME_LIMIT seconds and with a peak RSS (of that process,
from os.wait4) under RSS_LIMIT_MB.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, Result, run_cli
from tests.reliability_support import (
    Measured,
    clean_env,
    dump_db,
    reconciler_argv,
    record_figure,
    run_measured,
)

TIME_LIMIT = 5.0
RSS_LIMIT_MB = 300

VALID = "version: 1\ncustomer: {id: 100, name: Acme}\nextensions:\n" \
        "  - {extension: '7', name: Grace, product: Cloud PBX service}\n"


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("hostile") / "billing.db"
    assert (
        run_cli("--backend", f"sqlite:///{db}", "state", "load", str(FIXTURES / "state.yaml")).code
        == 0
    )
    return db


@pytest.fixture
def arena(template_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # crash logs, if any, land here and not in the repository
    shutil.copyfile(template_db, tmp_path / "billing.db")
    return tmp_path


def _apply(arena: Path, target: str, *, env: dict[str, str] | None = None,
           timeout: float = 30) -> Measured:
    before = dump_db(arena / "billing.db")
    result = run_measured(
        reconciler_argv("--backend", f"sqlite:///{arena / 'billing.db'}", "apply", target,
                        "--auto-approve"),
        cwd=arena, env=clean_env(env), timeout=timeout,
    )
    assert not result.killed, f"still running after {timeout} s\n{result}"
    assert "Traceback" not in result.shown and "internal error" not in result.shown, str(result)
    assert dump_db(arena / "billing.db") == before, f"billing changed\n{result}"
    return result


def _bounded(result: Measured) -> None:
    assert result.seconds < TIME_LIMIT, str(result)
    assert result.peak_rss_mb < RSS_LIMIT_MB, str(result)
    record_figure("hostile: inputs refused or handled within bounds")


# ---- the cases: name -> (writer, expected code in the output) ------------------------------------


def _laughs(levels: int = 9, fan: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * fan)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def _merge_laughs(levels: int = 9, fan: int = 9) -> str:
    lines = ["m0: &m0 {k0: lol, k1: lol, k2: lol, k3: lol, k4: lol, k5: lol, k6: lol, k7: lol, "
             "k8: lol}"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*m{level - 1}"] * fan)
        lines.append(f"m{level}: &m{level} {{<<: [{refs}], x{level}: [{refs}]}}")
    return "\n".join(lines) + "\n"


def _indented(depth: int) -> str:
    return "".join(" " * level + "a:\n" for level in range(depth)) + " " * depth + "x\n"


TEXT_CASES: dict[str, tuple[str | bytes, str]] = {
    "billion-laughs": (_laughs(), "yaml_refused"),
    "billion-laughs-in-a-valid-spec": (VALID + _laughs(), "yaml_refused"),
    "merge-key-bomb": (_merge_laughs(), "yaml_refused"),
    "recursive-alias-sequence": ("a: &a [1, *a]\n", "yaml_refused"),
    "recursive-alias-mapping": ("a: &a {b: *a}\n", "yaml_refused"),
    "python-object": ("version: 1\ncustomer: !!python/object:os.system {id: 100}\n",
                      "yaml_refused"),
    "python-object-apply": ("version: 1\n"
                            "customer: !!python/object/apply:os.system ['touch PWNED']\n",
                            "yaml_refused"),
    "python-object-new": ("x: !!python/object/new:subprocess.Popen [['touch', 'PWNED']]\n",
                          "yaml_refused"),
    "python-name": ("version: 1\ncustomer: {id: 100, name: !!python/name:os.system }\n",
                    "yaml_refused"),
    "python-module": ("version: 1\ncustomer: {id: 100, name: !!python/module:os }\n",
                      "yaml_refused"),
    "custom-tag": ("version: 1\ncustomer: !include /etc/passwd\n", "yaml_refused"),
    "custom-scalar-tag": ("version: 1\ncustomer: {id: 100, name: !Ref Acme}\n", "yaml_refused"),
    "set-tag": ("version: 1\ncustomer: !!set {id, name}\n", "yaml_refused"),
    "omap-tag": ("version: 1\ncustomer: !!omap [{id: 100}, {name: Acme}]\n", "yaml_refused"),
    # !!binary is kept as the text written: here it is the wrong customer name.
    "binary-tag": ("version: 1\ncustomer: {id: 100, name: !!binary QWNtZQ==}\n",
                   "customer_mismatch"),
    "flow-nesting-10000": ("[" * 10_000 + "]" * 10_000 + "\n", ""),
    "flow-mapping-nesting-10000": ("{a: " * 10_000 + "x" + "}" * 10_000 + "\n", ""),
    "block-nesting-10000": ("- " * 10_000 + "x\n", ""),
    "indented-nesting-2000": (_indented(2000), ""),
    "a-million-documents": ("---\n" * 1_000_000, "yaml_refused"),
    "ten-thousand-digit-integer": ("version: 1\ncustomer: {id: " + "9" * 10_000 + ", name: Acme}\n",
                                   ""),
    "one-megabyte-line": (VALID.replace("Grace", "x" * 1_000_000), "schema"),
    "nul-and-garbage-bytes": (b"version: 1\x00\xff\xfe\ncustomer: {id: 100}\n", "yaml_syntax"),
    "bom-and-crlf": ("\ufeff" + VALID.replace("\n", "\r\n").replace("Grace", "Grace\u2028"), ""),
}


def _write_case(folder: Path, name: str) -> Path:
    content, _ = TEXT_CASES[name]
    path = folder / f"{name}.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _apply_in_process(arena: Path, target: Path, **env: str) -> tuple[Result, float]:
    before = dump_db(arena / "billing.db")
    start = time.monotonic()
    result = run_cli("--backend", f"sqlite:///{arena / 'billing.db'}", "apply", str(target),
                     "--auto-approve", env=env or None)
    seconds = time.monotonic() - start
    assert "Traceback" not in result.out + result.err, str(result)
    assert "internal error" not in result.out + result.err, str(result)
    if result.code != 0:
        assert dump_db(arena / "billing.db") == before, f"billing changed\n{result}"
    return result, seconds


@pytest.mark.parametrize("name", sorted(TEXT_CASES))
def test_hostile_spec_text_is_refused_with_a_clear_message(arena: Path, name: str) -> None:
    _, code = TEXT_CASES[name]
    path = _write_case(arena, name)
    result, seconds = _apply_in_process(arena, path)
    assert seconds < TIME_LIMIT, f"{seconds:.1f} s\n{result}"
    shown = result.out + result.err
    if name == "bom-and-crlf":
        assert result.code == 0, str(result)  # handled: a valid spec in an unusual encoding
        return
    assert result.code == 1, str(result)
    if code:
        assert f"error[{code}]" in shown, str(result)
    assert str(path) in shown, "the message names the file"
    assert not (arena / "PWNED").exists()
    record_figure("hostile: inputs refused or handled within bounds")


def test_all_hostile_texts_at_once_stay_within_time_and_memory(arena: Path) -> None:
    """The same files in one folder, in one process: its time and peak RSS stay bounded."""
    folder = arena / "specs"
    folder.mkdir()
    paths = [_write_case(folder, name) for name in sorted(TEXT_CASES) if name != "bom-and-crlf"]
    result = _apply(arena, str(folder))
    _bounded(result)
    assert result.code == 1, str(result)
    for path in paths:
        assert str(path) in result.shown, f"{path.name} not reported"
    assert not (arena / "PWNED").exists()


# Found: nesting beyond libyaml's own limit (1,000 levels) was reported as yaml_syntax ("exceeded
# maximum nesting depth"), not as the yaml_refused the contract promises for nesting deeper than 64.
@pytest.mark.parametrize("name",
                         ["flow-nesting-10000", "block-nesting-10000", "indented-nesting-2000"])
def test_deep_nesting_is_refused_as_yaml_refused(arena: Path, name: str) -> None:
    result, _ = _apply_in_process(arena, _write_case(arena, name))
    assert "error[yaml_refused]" in result.out + result.err, str(result)


def test_a_100_mb_spec_is_refused_by_size_without_being_read(arena: Path) -> None:
    path = arena / "huge.yaml"
    line = b"  - {extension: '7', name: Grace, product: Cloud PBX service}\n"
    chunk = line * (1024 * 1024 // len(line))
    with open(path, "wb") as out:
        out.write(VALID.encode())
        while out.tell() < 100 * 1024 * 1024:
            out.write(chunk)
    # Run the CLI in a process that reports how many bytes it read (Linux /proc/self/io "rchar").
    probe = (
        "import sys\nfrom reconciler.cli import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
        "    try:\n        sys.stderr.write(open('/proc/self/io').read())\n"
        "    except OSError:\n        pass\n"
    )
    result = run_measured(
        [sys.executable, "-c", probe, "--backend", f"sqlite:///{arena / 'billing.db'}", "apply",
         str(path), "--auto-approve"], cwd=arena, env=clean_env(), timeout=30,
    )
    _bounded(result)
    assert result.code == 1 and "error[yaml_refused]" in result.shown, str(result)
    assert "over the limit of 10485760 bytes" in result.shown
    read = [int(line.split()[1]) for line in result.err.splitlines() if line.startswith("rchar:")]
    if read:  # where /proc/self/io exists: far less than the file was read (imports included)
        assert read[0] < 30 * 1024 * 1024, (
            f"read {read[0]} bytes of a {path.stat().st_size} byte file"
        )
    path.unlink()


def test_the_size_limit_is_settable(arena: Path) -> None:
    path = arena / "small.yaml"
    path.write_text(VALID + "# padding\n" * 200)
    result, _ = _apply_in_process(arena, path, RECONCILER_MAX_SPEC_BYTES="1000")
    assert result.code == 1 and "error[yaml_refused]" in result.err + result.out, str(result)
    assert "1000 bytes" in result.out + result.err


# ---- the file system as a weapon -----------------------------------------------------------------


def _hostile_folder(arena: Path) -> tuple[Path, dict[str, str]]:
    """A spec folder full of traps; returns it and the code expected for each trap file."""
    specs = arena / "specs"
    (specs / "team" / "nested").mkdir(parents=True)
    (specs / "passwd.yaml").symlink_to("/etc/passwd")
    (specs / "zero.yaml").symlink_to("/dev/zero")
    os.mkfifo(specs / "x.yaml")
    (specs / "loop-a.yaml").symlink_to(specs / "loop-b.yaml")  # a file link loop
    (specs / "loop-b.yaml").symlink_to(specs / "loop-a.yaml")
    (specs / "hop.link").symlink_to("/etc/passwd")  # inside -> inside -> outside
    (specs / "chain.yaml").symlink_to(specs / "hop.link")
    (specs / "dir.yaml").mkdir()  # a folder named like a spec
    # directory loops
    (specs / "team" / "nested" / "up").symlink_to(specs, target_is_directory=True)
    (specs / "self").symlink_to(".", target_is_directory=True)
    return specs, {"passwd.yaml": "yaml_refused", "zero.yaml": "yaml_refused",
                   "x.yaml": "yaml_refused",
                   "chain.yaml": "yaml_refused", "loop-a.yaml": "", "loop-b.yaml": ""}


def test_a_spec_folder_full_of_file_system_traps(arena: Path) -> None:
    specs, expected = _hostile_folder(arena)
    result = _apply(arena, str(specs), timeout=TIME_LIMIT * 2)
    _bounded(result)
    assert result.code == 1, str(result)
    for name, code in expected.items():
        lines = [line for line in result.shown.splitlines() if str(specs / name) in line]
        assert lines, f"{name} is not reported\n{result}"
        if code:
            assert any(f"error[{code}]" in line for line in lines), lines
        record_figure("hostile: inputs refused or handled within bounds")
    assert "root:" not in result.shown, "the content of /etc/passwd must not be shown"


@pytest.mark.parametrize("name", ["passwd.yaml", "x.yaml", "zero.yaml", "chain.yaml"])
def test_a_trap_named_directly_is_refused_without_hanging(arena: Path, name: str) -> None:
    specs, expected = _hostile_folder(arena)
    result = _apply(arena, str(specs / name), timeout=TIME_LIMIT * 2)
    _bounded(result)
    assert result.code == 1 and f"error[{expected[name]}]" in result.shown, str(result)
    assert "root:" not in result.shown


def test_a_directory_symlink_loop_inside_the_spec_folder_is_not_followed(arena: Path) -> None:
    specs = arena / "specs"
    (specs / "team" / "nested").mkdir(parents=True)
    (specs / "team" / "ok.yaml").write_text(VALID)
    (specs / "team" / "nested" / "up").symlink_to(specs, target_is_directory=True)  # a loop
    (specs / "self").symlink_to(".", target_is_directory=True)  # another loop
    start = time.monotonic()
    result = run_cli("--backend", f"sqlite:///{arena / 'billing.db'}", "plan", str(specs),
                     "--format", "json")
    assert time.monotonic() - start < TIME_LIMIT
    assert result.code == 0, str(result)
    files = [c["file"] for c in result.json["customers"]]
    assert files == [str(specs / "team" / "ok.yaml")], files  # found once, not once per loop turn
    record_figure("hostile: inputs refused or handled within bounds")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_spec_is_a_clear_error(arena: Path) -> None:
    path = arena / "secret.yaml"
    path.write_text(VALID)
    path.chmod(0)
    result, _ = _apply_in_process(arena, path)
    assert result.code == 1 and "cannot read" in result.err + result.out, str(result)


# ---- values that are too big ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [str(2**63), str(10**30)])
def test_a_huge_customer_id_is_a_clear_error(arena: Path, value: str) -> None:
    """Found: a customer id beyond 64 bits crashed (OverflowError converting to SQLite INTEGER)."""
    path = arena / "huge-int.yaml"
    path.write_text(f"version: 1\ncustomer: {{id: {value}, name: Acme}}\n")
    result, _ = _apply_in_process(arena, path)  # no traceback, no internal error, billing unchanged
    assert result.code == 1, str(result)
    assert (f"error[schema] {path}:2:16: customer.id: {value} is over the maximum of "
            f"{2**63 - 1}") in result.out, str(result)


def test_messages_about_a_1_mb_value_stay_short(arena: Path) -> None:
    """Found: messages repeated the whole offending value (a 1 MB product name gave a 2 MB plan)."""
    path = arena / "long.yaml"
    path.write_text(VALID.replace("Cloud PBX service", "x" * 1_000_000))
    result, _ = _apply_in_process(arena, path)
    assert result.code == 1
    assert len(result.out + result.err) < 64 * 1024, (
        f"{len(result.out + result.err)} bytes of output"
    )


def test_scalar_alias_amplification_is_bounded(arena: Path) -> None:
    """Found: a scalar alias repeated N times repeated its whole value in N messages: a 100 KB
    spec printed 20 MB, a 200 KB one 200 MB in 8 s (the alias bomb guard counts nodes, not text)."""
    refs = ", ".join(["*a"] * 200)
    path = arena / "amplify.yaml"
    path.write_text("version: 1\ncustomer: {id: 100, name: Acme}\nextensions:\n  - extension: '7'\n"
                    "    name: n\n    product: Cloud PBX service\n    dids: [&a "
                    f"\"{'1' * 100_000}\", {refs}]\n")
    result, _ = _apply_in_process(arena, path)
    assert result.code == 1
    shown = len(result.out + result.err)
    assert shown < 20 * path.stat().st_size, (
        f"{shown} bytes of output for a {path.stat().st_size} byte spec"
    )


# ---- billing state files (the provider's side) ---------------------------------------------------


@pytest.mark.parametrize("name",
                         ["billion-laughs", "recursive-alias-mapping", "python-object-apply",
                                  "flow-nesting-10000", "custom-tag"])
def test_hostile_state_files_are_refused(arena: Path, name: str) -> None:
    path = arena / "state.yaml"
    path.write_text(str(TEXT_CASES[name][0]))
    before = dump_db(arena / "billing.db")
    start = time.monotonic()
    result = run_cli("--backend", f"sqlite:///{arena / 'billing.db'}", "state", "load", str(path))
    assert time.monotonic() - start < TIME_LIMIT
    assert result.code == 1, str(result)
    assert "Traceback" not in result.out + result.err, str(result)
    assert "internal error" not in result.out + result.err, str(result)
    assert dump_db(arena / "billing.db") == before
    assert not (arena / "PWNED").exists()


def test_a_ten_thousand_digit_integer_is_located_and_plainly_worded(arena: Path) -> None:
    path = _write_case(arena, "ten-thousand-digit-integer")
    result, _ = _apply_in_process(arena, path)
    shown = result.out + result.err
    assert result.code == 1
    assert f"{path}:2:" in shown, shown  # the line of customer.id
    assert "sys.set_int_max_str_digits" not in shown, shown


def test_a_database_without_its_tables_is_a_clear_error(arena: Path) -> None:
    import sqlite3

    broken = arena / "broken.db"
    con = sqlite3.connect(broken)
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.commit()
    con.close()
    (arena / "spec.yaml").write_text(VALID)
    result = run_cli("--backend", f"sqlite:///{broken}", "plan", str(arena / "spec.yaml"))
    assert result.code == 1
    assert "internal error" not in result.out + result.err, str(result)
    assert str(broken) in result.err, str(result)
