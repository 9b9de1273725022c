"""The line_format template subset renders like Go's text/template and refuses what it does not support."""

from __future__ import annotations

import pytest

from logtraced.errors import QueryError
from logtraced.query.template import parse_template

LABELS = {"a": "x", "b": "Mixed", "n": "5", "path": "/api/v1", "empty": ""}

CASES: list[tuple[str, str]] = [
    ("plain", "plain"),
    ("{{.a}} {{.b}}", "x Mixed"),
    ("{{ .missing }}|", "|"),
    ("{{ .b | ToUpper }} {{ ToLower .b }} {{ upper .a }} {{ lower .b }}", "MIXED mixed X mixed"),
    ('{{ default "none" .missing }} {{ .empty | default "d" }} {{ default "d" .a }}', "none d x"),
    ('{{ printf "%s=%5s|%-3s|" .a .b .a }}', "x=Mixed|x  |"),
    ('{{ printf "%d %d %.2f %q %%" 3 .n 1.5 .a }}', '3 %!d(string=5) 1.50 "x" %'),
    ('{{ printf "%s" }} {{ printf "x" .a }}', "%!s(MISSING) x%!(EXTRA string=x)"),
    ('{{ TrimPrefix .path "/api" }} {{ trunc 3 .b }} {{ replace "M" "m" .b }}', "/v1 Mix mixed"),
    ("a  {{- .a -}}  b", "axb"),
    ("{{/* note */}}{{ __line__ }}", "LINE"),
    ("{{ (ToUpper .a) }}{{ `raw` }}{{ 42 }}", "Xraw42"),
]


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_templates_render(source: str, expected: str) -> None:
    assert parse_template(source).render(LABELS.get, "LINE") == expected


ERRORS: list[tuple[str, int, str]] = [
    ("{{ if .a }}x{{ end }}", 3, 'unsupported: the "if" action'),
    ("{{ range .a }}{{ end }}", 3, '"range" action'),
    ("{{ $x := 1 }}", 3, "template variables"),
    ("{{ nope .a }}", 3, 'unknown function "nope"'),
    ("{{ .a", 5, 'expected "}}"'),
    ("{{ . }}", 3, '"." without a label name'),
    ("{{ .a.b }}", 3, "nested field"),
    ('{{ "\\d" }}', 4, "unknown escape"),
    ("{{ ToUpper .a .b }}", 3, "at most 1 arguments"),
]


@pytest.mark.parametrize(("source", "offset", "message"), ERRORS)
def test_unsupported_templates_are_refused_with_an_offset(source: str, offset: int, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_template(source)
    assert caught.value.position == offset
    assert message in caught.value.message


def test_templates_compare_by_source() -> None:
    assert parse_template("{{.a}}") == parse_template("{{.a}}")
    assert parse_template("{{.a}}") != parse_template("{{ .a }}")
