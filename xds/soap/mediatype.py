"""Parsing of MIME media types with parameters (Content-Type header values)."""

from __future__ import annotations


def _split_params(value: str) -> list[str]:
    """Split on ';' outside quoted strings."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
        elif quoted and ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == '"':
            current.append(ch)
            quoted = not quoted
        elif ch == ";" and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return items


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        out: list[str] = []
        escaped = False
        for ch in value[1:-1]:
            if escaped:
                out.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            else:
                out.append(ch)
        return "".join(out)
    return value


def parse_media_type(value: str | None) -> tuple[str, dict[str, str]]:
    """``'multipart/related; type="a/b"'`` -> ``('multipart/related', {'type': 'a/b'})``.

    The media type and parameter names are lower-cased; values keep their case.
    """
    if not value:
        return "", {}
    first, *rest = _split_params(value)
    params: dict[str, str] = {}
    for item in rest:
        name, sep, val = item.partition("=")
        name = name.strip().lower()
        if name and sep:
            params[name] = _unquote(val)
    return first.strip().lower(), params


def quote_param(value: str) -> str:
    """A parameter value as a quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
