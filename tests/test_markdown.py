"""The Markdown plan: a pull-request comment in parts that GitHub accepts."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.render.markdown import render_markdown, render_markdown_parts

PART_HEADER = re.compile(r"<!-- reconciler:part (\d+)/(\d+) -->")


def _create(customer: int, n: int, name: str = "Extension") -> dict:
    return {
        "op": "create_account",
        "account": f"ph{customer}x{n}",
        "kind": "extension",
        "name": f"{name} {n}",
        "product": "Cloud PBX service",
        "addons": ["Call recording"],
        "blocked": False,
    }


def _alias(customer: int, n: int) -> dict:
    return {"op": "add_alias", "account": f"ph{customer}x{n}", "did": f"1209{customer:05d}{n:04d}"}


def _customer(number: int, name: str, changes: list[dict], **extra: object) -> dict:
    return {
        "customer": number,
        "name": name,
        "file": f"specs/customers/{name.lower()}.yaml",
        "fingerprint": f"sha256:{number:064d}",
        "changes": changes,
        "errors": [],
        "warnings": [],
        "unsafe": False,
        "unsafe_reason": None,
        "usage": [],
        **extra,
    }


def _plan(customers: list[dict], errors: list[dict] | None = None) -> dict:
    changes = sum(len(c["changes"]) for c in customers)
    return {
        "format_version": 1,
        "backend": "sqlite:///.reconciler/billing.db",
        "customers": customers,
        "errors": errors or [],
        "summary": {"customers": len(customers), "changes": changes, "errors": 0, "warnings": 0},
    }


@pytest.fixture(scope="module")
def big_plan() -> dict:
    """3,000 changes over a few customers, plus one customer too big for any part."""
    customers = []
    for index, number in enumerate((10001, 10002, 10003, 10004)):
        changes = []
        for n in range(375):
            changes.append(_create(number, n))
            changes.append(_alias(number, n))
        customers.append(_customer(number, f"Customer{index}", changes))
    # Long names make this customer's section alone several times the part limit.
    huge = [_create(20000, n, name="Reception desk " + "x" * 100) for n in range(2500)]
    customers.insert(2, _customer(20000, "Huge", huge))
    return _plan(customers)


@pytest.fixture(scope="module")
def big_parts(big_plan: dict) -> list[str]:
    return render_markdown_parts(big_plan)


def test_every_part_is_under_the_limit_and_numbered(big_parts: list[str]) -> None:
    total = len(big_parts)
    assert total > 3
    for index, part in enumerate(big_parts, start=1):
        assert len(part) < 65000
        assert part.splitlines()[0] == f"<!-- reconciler:part {index}/{total} -->"
        assert len(PART_HEADER.findall(part)) == 1


def test_every_details_section_is_closed_in_its_own_part(big_parts: list[str]) -> None:
    for part in big_parts:
        opened = len(re.findall(r"<details[ >]", part))
        assert opened == part.count("</details>")
        assert part.count("<summary>") == part.count("</summary>") == opened
        # Closed after it was opened, never before.
        depth = 0
        for tag in re.findall(r"</?details", part):
            depth += 1 if tag == "<details" else -1
            assert depth in (0, 1)


def test_joined_parts_show_every_change_exactly_once(big_plan: dict, big_parts: list[str]) -> None:
    joined = "\n".join(big_parts)
    shown = Counter(
        re.findall(r"^\| <code>.</code> \| (\w+) \| <code>(\w+)</code> \|", joined, re.M)
    )
    wanted = Counter(
        (change["op"], change["account"])
        for customer in big_plan["customers"]
        for change in customer["changes"]
    )
    assert shown == wanted
    assert set(shown.values()) == {1}
    rows = [line for line in joined.splitlines() if line.startswith("| <code>")]
    summary_rows = 2  # the summary's count table: create_account and add_alias
    assert len(rows) == 3000 + 2500 + summary_rows


def test_a_customer_too_big_for_a_part_is_split_at_change_boundaries(big_parts: list[str]) -> None:
    joined = "\n".join(big_parts)
    pieces = re.findall(r"<summary><b>Huge</b> \(20000\) \(part (\d+)\)", joined)
    assert [int(p) for p in pieces] == list(range(1, len(pieces) + 1))
    assert len(pieces) >= 3
    # Each piece of the table starts again with its header row.
    for part in big_parts:
        if "<b>Huge</b>" in part:
            assert "| | change | account | details |" in part


def test_summary_comes_first(big_parts: list[str]) -> None:
    assert "5 customers · 5500 changes · 0 errors · 0 warnings" in big_parts[0]
    if "<details" in big_parts[0]:
        assert big_parts[0].index("5500 changes") < big_parts[0].index("<details")
    assert all("5500 changes" not in part for part in big_parts[1:])


def test_a_smaller_limit_gives_more_parts_all_within_it(big_plan: dict) -> None:
    parts = render_markdown_parts(big_plan, limit=20000)
    assert all(len(part) < 20000 for part in parts)
    assert parts[-1].startswith(f"<!-- reconciler:part {len(parts)}/{len(parts)} -->")


def test_output_is_deterministic(big_plan: dict, big_parts: list[str]) -> None:
    assert render_markdown_parts(big_plan) == big_parts


def test_user_text_is_escaped() -> None:
    change = _create(46170, 1, name="<script>alert(1)</script> | `x` @team")
    plan = _plan([_customer(46170, "<b>ABC</b>", [change])])
    markdown = render_markdown(plan)
    assert "<script>" not in markdown
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &#124; &#96;x&#96;" in markdown
    assert "<b>&lt;b&gt;ABC&lt;/b&gt;</b>" in markdown
    assert "@team" not in markdown  # no mention notifies anyone


TINY_PLAN = {
    "format_version": 1,
    "backend": "sqlite:///.reconciler/billing.db",
    "customers": [
        {
            "customer": 46170,
            "name": "ABC",
            "file": "specs/customers/abc.yaml",
            "fingerprint": "sha256:abc",
            "changes": [
                {"op": "remove_alias", "account": "ph46170x466", "did": "12094555949"},
                {"op": "set_name", "account": "ph46170x466", "from": "John", "to": "John Doe"},
                {
                    "op": "create_account",
                    "account": "ph46170aa1",
                    "kind": "auto_attendant",
                    "name": "Main menu",
                    "product": "Auto attendant",
                    "addons": [],
                    "blocked": False,
                },
                {"op": "add_alias", "account": "ph46170aa1", "did": "12094555948"},
            ],
            "errors": [
                {
                    "code": "quantity_exceeded",
                    "message": "Call recording: 301 wanted, 300 allowed, 300 in use",
                    "file": "specs/customers/abc.yaml",
                    "line": 12,
                    "column": 5,
                }
            ],
            "warnings": [
                {
                    "code": "not_in_spec",
                    "message": "ph46170x100 is not in the spec",
                    "file": "specs/customers/abc.yaml",
                    "line": None,
                    "column": None,
                }
            ],
            "unsafe": True,
            "unsafe_reason": "terminates 3 of 8 managed accounts (38%), over 25%",
            "usage": [
                {"product": "Call recording", "in_use": 12, "planned": 13, "quantity": 300},
                {"product": "Cloud PBX service", "in_use": 4, "planned": 5, "quantity": 0},
            ],
        }
    ],
    "errors": [
        {
            "code": "yaml_syntax",
            "message": "bad YAML",
            "file": "specs/customers/x.yaml",
            "line": 3,
            "column": None,
        }
    ],
    "summary": {"customers": 1, "changes": 4, "errors": 2, "warnings": 1},
}


def test_tiny_plan_golden_lines() -> None:
    parts = render_markdown_parts(TINY_PLAN)
    assert len(parts) == 1
    lines = parts[0].splitlines()
    assert lines[0] == "<!-- reconciler:part 1/1 -->"
    assert "## pbx-reconciler plan" in lines
    # The customer has errors: apply skips it, so its 4 changes are held back, not counted.
    assert "**1 customer · 0 changes · 2 errors · 1 warning**" in lines
    assert any("(1 customer skipped, 4 changes held back)" in line for line in lines)
    assert "| <code>-</code> | remove_alias | 1 |" not in lines
    assert (
        "| <code>+</code> | create_account | <code>ph46170aa1</code> "
        "| auto attendant &quot;Main menu&quot;, product Auto attendant |"
    ) in lines
    assert (
        "| <code>+</code> | add_alias | <code>ph46170aa1</code> | DID <code>12094555948</code> |"
        in lines
    )
    assert (
        "| <code>~</code> | set_name | <code>ph46170x466</code> "
        "| name &quot;John&quot; → &quot;John Doe&quot; |"
    ) in lines
    assert (
        "- ❌ <code>quantity_exceeded</code> <code>specs/customers/abc.yaml:12:5</code> — "
        "Call recording: 301 wanted, 300 allowed, 300 in use"
    ) in lines
    assert (
        "- ⚠️ <code>not_in_spec</code> <code>specs/customers/abc.yaml</code> — "
        "ph46170x100 is not in the spec" in lines
    )
    assert "- ❌ <code>yaml_syntax</code> <code>specs/customers/x.yaml:3</code> — bad YAML" in lines
    assert "- Call recording 13/300 (in use now: 12)" in lines
    assert "- Cloud PBX service 5/unlimited (in use now: 4)" in lines
    assert any(
        line.startswith("<details open><summary><b>ABC</b> (46170)") and "UNSAFE" in line
        for line in lines
    )
    assert any(line.startswith("⚠️ **Unsafe plan:** terminates 3 of 8") for line in lines)
    assert "No changes." not in lines


def test_no_changes_says_so() -> None:
    plan = _plan([_customer(46170, "ABC", [])])
    parts = render_markdown_parts(plan)
    assert len(parts) == 1
    assert "No changes." in parts[0].splitlines()
    assert "<details><summary><b>ABC</b> (46170) · 0 changes</summary>" in parts[0]


def test_render_markdown_joins_the_parts() -> None:
    plan = _plan([_customer(46170, "ABC", [_create(46170, n) for n in range(400)])])
    parts = render_markdown_parts(plan, limit=10000)
    assert len(parts) > 1
    assert render_markdown(plan, limit=10000) == "\n".join(parts)


def test_a_limit_too_small_for_one_change_is_refused() -> None:
    plan = _plan([_customer(46170, "ABC", [_create(46170, 1, name="x" * 100)])])
    with pytest.raises(ValueError, match="too small"):
        render_markdown_parts(plan, limit=400)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=120), min_size=1, max_size=6),
    limit=st.integers(min_value=2500, max_value=12000),
    name=st.text(max_size=40),
)
def test_any_plan_packs_within_any_limit(sizes: list[int], limit: int, name: str) -> None:
    customers = [
        _customer(30000 + i, f"C{i}", [_create(30000 + i, n, name=name) for n in range(size)])
        for i, size in enumerate(sizes)
    ]
    parts = render_markdown_parts(_plan(customers), limit=limit)
    for index, part in enumerate(parts, start=1):
        assert len(part) < limit
        assert part.startswith(f"<!-- reconciler:part {index}/{len(parts)} -->\n")
        assert len(re.findall(r"<details[ >]", part)) == part.count("</details>")
    joined = "\n".join(parts)
    shown = re.findall(r"^\| <code>\+</code> \| create_account \| <code>(\w+)</code>", joined, re.M)
    assert sorted(shown) == sorted(c["account"] for cu in customers for c in cu["changes"])
