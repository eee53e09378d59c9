"""GitHub Actions annotations: every problem shows up on its line in the pull request."""

from __future__ import annotations

from reconciler.render.annotations import escape_data, escape_property, github_annotations


def _plan(
    errors: list[dict] | None = None,
    warnings: list[dict] | None = None,
    top_level: list[dict] | None = None,
) -> dict:
    return {
        "format_version": 1,
        "customers": [
            {"customer": 46170, "changes": [], "errors": errors or [], "warnings": warnings or []}
        ],
        "errors": top_level or [],
        "summary": {},
    }


QUANTITY = {
    "code": "quantity_exceeded",
    "message": "Call recording: 301 wanted, 300 allowed, 300 in use",
    "file": "specs/customers/abc.yaml",
    "line": 12,
    "column": 5,
}


def test_a_located_error_names_file_line_column_and_code() -> None:
    assert github_annotations(_plan(errors=[QUANTITY])) == [
        "::error file=specs/customers/abc.yaml,line=12,col=5,title=quantity_exceeded::"
        "Call recording: 301 wanted, 300 allowed, 300 in use"
    ]


def test_a_warning_is_a_warning() -> None:
    warning = {
        "code": "did_normalised",
        "message": "+1 209-455-5948 is written 12094555948",
        "file": "specs/customers/abc.yaml",
        "line": 20,
        "column": 9,
    }
    assert github_annotations(_plan(warnings=[warning])) == [
        "::warning file=specs/customers/abc.yaml,line=20,col=9,title=did_normalised::"
        "+1 209-455-5948 is written 12094555948"
    ]


def test_message_escapes_percent_and_line_breaks() -> None:
    problem = dict(QUANTITY, message="100% used\nsecond line\r\nthird")
    (line,) = github_annotations(_plan(errors=[problem]))
    assert line.endswith("::100%25 used%0Asecond line%0D%0Athird")
    assert "\n" not in line


def test_property_values_escape_colon_and_comma() -> None:
    problem = dict(QUANTITY, file="specs/a,b:c%.yaml")
    (line,) = github_annotations(_plan(errors=[problem]))
    assert line.startswith("::error file=specs/a%2Cb%3Ac%25.yaml,line=12,")
    assert escape_property("a:b,c\nd") == "a%3Ab%2Cc%0Ad"
    assert escape_data("a:b,c") == "a:b,c"


def test_missing_line_and_column_are_left_out() -> None:
    problem = dict(
        QUANTITY,
        code="not_in_spec",
        message="ph46170x100 is not in the spec",
        line=None,
        column=None,
    )
    assert github_annotations(_plan(warnings=[problem])) == [
        "::warning file=specs/customers/abc.yaml,title=not_in_spec::ph46170x100 is not in the spec"
    ]


def test_top_level_problem_without_file() -> None:
    problem = {
        "code": "backend",
        "message": "cannot open billing",
        "file": None,
        "line": None,
        "column": None,
    }
    assert github_annotations(_plan(top_level=[problem])) == [
        "::error title=backend::cannot open billing"
    ]


def test_errors_then_warnings_top_level_first() -> None:
    top = {"code": "yaml_syntax", "message": "bad", "file": "specs/x.yaml", "line": 1, "column": 1}
    warning = dict(QUANTITY, code="did_in_use", message="w")
    lines = github_annotations(_plan(errors=[QUANTITY], warnings=[warning], top_level=[top]))
    assert [line.split(" ", 1)[0] for line in lines] == ["::error", "::error", "::warning"]
    assert "title=yaml_syntax" in lines[0]


def test_no_problems_no_annotations() -> None:
    assert github_annotations(_plan()) == []
