# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Read and edit .env files the way Docker Compose reads them.

The rules follow the dotenv parser of compose-go, the library behind Docker Compose
v2 and later, and were checked against Docker Compose v5.6.1 with
``docker compose config``:

- A statement is ``KEY=VALUE`` or ``KEY: VALUE``, optionally after ``export``.
  Whitespace around the separator is ignored. A key consists of letters, digits and
  ``_ . - [ ]``. A line with only a key takes the value from the environment.
- Blank lines and lines whose first non-blank character is ``#`` are skipped.
- Unquoted values end at the first space followed by ``#`` (a tab before ``#`` does
  not start a comment), and trailing whitespace is removed. A value that starts with
  ``#`` is a value, not a comment: ``KEY= #x`` sets KEY to ``#x``.
- Single-quoted values are literal, except that ``\\'`` stands for a quote.
- Double-quoted values process ``\\n \\r \\t \\" \\\\`` and the other escapes listed in
  ``_DOUBLE_QUOTE_ESCAPES``. ``\\$`` becomes ``$$``, the interpolation syntax for a
  literal ``$``.
- Compose interpolates ``$VAR`` and ``${VAR}`` in unquoted and double-quoted values.
  This module does not interpolate: it returns the value before interpolation and
  reports whether interpolation applies.

Like Compose, the parser rejects a key with a space or an unexpected character, and
an unterminated quote. It also rejects three cases that Compose accepts, because an
edit that misreads the file could change another variable: ``=value`` without a key,
text after a closing quote that is not a comment, and a quoted value that spans
lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# compose-go's isSpace: blanks inside a line, without the line break.
_INLINE_SPACE = "\t\v\f\r \x85\xa0"
# Go's unicode.IsSpace, which compose-go uses to trim unquoted values. It differs
# from str.isspace, which also matches the ASCII separators \x1c to \x1f.
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_EXPORT_PREFIX = re.compile(r"export[\t\n\f\r ]+")
_KEY_PUNCTUATION = frozenset("_.-[]")

# Escapes that compose-go expands in double-quoted values, after removing the
# backslash of an escaped quote. An octal escape is \0 followed by three octal digits.
_ESCAPE_SEQUENCE = re.compile(r"\\(?:[abcfnrtv$\"\\]|0[0-9]{0,3})")
_DOUBLE_QUOTE_ESCAPES = {
    "\\a": "\a",
    "\\b": "\b",
    "\\f": "\f",
    "\\n": "\n",
    "\\r": "\r",
    "\\t": "\t",
    "\\v": "\v",
    '\\"': '"',
    "\\\\": "\\",
    "\\$": "$$",
}
# How set_value writes characters inside double quotes.
_DOUBLE_QUOTE_ENCODING = {
    "\\": "\\\\",
    '"': '\\"',
    "$": "\\$",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
# Control characters that set_value writes as escapes inside double quotes.
_CONTROL_CHARACTERS = frozenset("\a\b\f\n\r\t\v")
# Characters that make set_value quote a value that was unquoted.
_NEEDS_QUOTES = frozenset(_GO_SPACE + "#'\"$")


class EnvFileError(ValueError):
    """The .env text cannot be parsed, or a key or value cannot be written."""


@dataclass(frozen=True)
class EnvEntry:
    """One ``KEY=VALUE`` statement of a .env file.

    ``line_index`` counts from 0 over ``text.split("\\n")``. ``raw_value`` is the
    value as written, with its quotes and without an inline comment. ``value`` is the
    value after quote removal and escape processing, before interpolation. Both are
    None for a line with only a key. ``quote`` is ``'``, ``"`` or None (unquoted).
    ``interpolated`` is whether Compose expands ``$VAR`` in the value.
    ``value_span`` is the (start, end) column range of ``raw_value`` in the line, or
    twice the column after the key for a line with only a key.
    """

    line_index: int
    key: str
    raw_value: str | None
    value: str | None
    quote: str | None
    has_export: bool
    interpolated: bool
    value_span: tuple[int, int]

    @property
    def inherited(self) -> bool:
        """Whether the line has only a key, so the value comes from the environment."""
        return self.raw_value is None


def _is_key_character(char: str) -> bool:
    return char.isalnum() or char in _KEY_PUNCTUATION


def _skip_inline_space(line: str, position: int) -> int:
    while position < len(line) and line[position] in _INLINE_SPACE:
        position += 1
    return position


def _expand_escape(match: re.Match) -> str:
    sequence = match.group(0)
    if sequence in _DOUBLE_QUOTE_ESCAPES:
        return _DOUBLE_QUOTE_ESCAPES[sequence]
    digits = sequence[2:]
    # Go's strconv.UnquoteChar accepts only three octal digits up to \377. Anything
    # else stays as written, as in compose-go.
    if len(digits) == 3 and all(d in "01234567" for d in digits):
        code = int(digits, 8)
        if code <= 0o377:
            return chr(code)
    return sequence


def _scan_quoted(line: str, start: int, line_number: int, key: str):
    """Return (value, end) for the quoted value starting at ``line[start]``."""
    quote = line[start]
    chars = []
    escaped = False
    for position in range(start + 1, len(line)):
        char = line[position]
        if escaped:
            escaped = False
            # An escaped quote drops its backslash, but any other escape keeps it.
            if char != quote:
                chars.append("\\")
            chars.append(char)
        elif char == "\\":
            escaped = True
        elif char == quote:
            value = "".join(chars)
            if quote == '"':
                value = _ESCAPE_SEQUENCE.sub(_expand_escape, value)
            return value, position + 1
        else:
            chars.append(char)

    # NOTE: Compose accepts a quoted value that continues on the next lines. This
    # parser raises instead, so such files cannot be edited with set_value.
    raise EnvFileError(
        f"line {line_number}: the quoted value of {key!r} is not closed on the same"
        " line; values that span lines are not supported, put the value on one line"
        " and write line breaks as \\n inside double quotes"
    )


def _parse_line(line: str, line_index: int) -> EnvEntry | None:
    line_number = line_index + 1
    position = 0
    while position < len(line) and line[position] in _GO_SPACE:
        position += 1
    if position == len(line) or line[position] == "#":
        return None

    has_export = False
    export = _EXPORT_PREFIX.match(line, position)
    if export is not None:
        has_export = True
        position = export.end()

    key_start = position
    separator_at = None
    for index in range(key_start, len(line)):
        char = line[index]
        if char in "=:":
            separator_at = index
            break
        if char in _INLINE_SPACE:
            continue
        if not _is_key_character(char):
            raise EnvFileError(
                f"line {line_number}: unexpected character {char!r} in variable name"
                f" {line[key_start:].strip()!r}"
            )

    key_end = separator_at if separator_at is not None else len(line)
    key = line[key_start:key_end].rstrip(_GO_SPACE)
    if not key:
        raise EnvFileError(f"line {line_number}: missing variable name before '='")
    if any(char in _GO_SPACE for char in key):
        raise EnvFileError(f"line {line_number}: key {key!r} cannot contain a space")

    if separator_at is None:
        end_of_key = key_start + len(key)
        return EnvEntry(
            line_index,
            key,
            None,
            None,
            None,
            has_export,
            False,
            (end_of_key, end_of_key),
        )

    value_start = _skip_inline_space(line, separator_at + 1)
    if value_start < len(line) and line[value_start] in "'\"":
        quote = line[value_start]
        value, value_end = _scan_quoted(line, value_start, line_number, key)
        rest = _skip_inline_space(line, value_end)
        if rest < len(line) and line[rest] != "#":
            raise EnvFileError(
                f"line {line_number}: unexpected text {line[rest:]!r} after the"
                f" closing quote of {key!r}; put a comment after ' #' or remove the"
                " text"
            )
    else:
        quote = None
        comment_at = line.find(" #", value_start)
        value_end = comment_at if comment_at != -1 else len(line)
        value = line[value_start:value_end].rstrip(_GO_SPACE)
        value_end = value_start + len(value)

    return EnvEntry(
        line_index=line_index,
        key=key,
        raw_value=line[value_start:value_end],
        value=value,
        quote=quote,
        has_export=has_export,
        interpolated=quote != "'",
        value_span=(value_start, value_end),
    )


def parse(text: str) -> list[EnvEntry]:
    """Parse .env ``text`` into its statements, in file order.

    Raises EnvFileError, naming the line, for text that Compose rejects or that
    this parser does not support (see the module docstring).
    """
    entries = []
    for line_index, line in enumerate(text.split("\n")):
        entry = _parse_line(line, line_index)
        if entry is not None:
            entries.append(entry)
    return entries


def get(text: str, key: str) -> str | None:
    """Return the value of the last ``key`` statement, as Compose uses the last one.

    The value is the one before interpolation (see EnvEntry). Lines with only a key
    are skipped because their value comes from the environment. Returns None when no
    statement sets ``key``.
    """
    value = None
    for entry in parse(text):
        if entry.key == key and not entry.inherited:
            value = entry.value
    return value


def values(text: str) -> dict[str, str]:
    """Return a dict of every key to the value of its last statement."""
    result = {}
    for entry in parse(text):
        if not entry.inherited:
            result[entry.key] = entry.value
    return result


def validate_key(key) -> str:
    """Return ``key`` if Compose accepts it as a .env key, else raise EnvFileError."""
    if not isinstance(key, str) or not key:
        raise EnvFileError(f"key {key!r} is empty, expected a name such as BACKEND_TAG")
    if not all(_is_key_character(char) for char in key):
        raise EnvFileError(
            f"key {key!r} is invalid, expected letters, digits and '_', '.', '-',"
            " '[' or ']', such as BACKEND_TAG"
        )
    return key


def _validate_value(key: str, value) -> str:
    if not isinstance(value, str):
        raise EnvFileError(f"value {value!r} of {key!r} is not a string")
    for char in value:
        if char in _DOUBLE_QUOTE_ENCODING or char.isprintable() or char in _GO_SPACE:
            continue
        raise EnvFileError(
            f"value {value!r} of {key!r} contains the control character {char!r},"
            " which a .env file cannot contain"
        )
    return value


def _encode_double_quoted(value: str) -> str:
    return '"' + "".join(_DOUBLE_QUOTE_ENCODING.get(c, c) for c in value) + '"'


def _fits_single_quotes(value: str) -> bool:
    # Inside single quotes, \' is a quote, so a value cannot contain ' or end with \.
    if "'" in value or value.endswith("\\"):
        return False
    return not any(char in _CONTROL_CHARACTERS for char in value)


def _fits_unquoted(value: str) -> bool:
    return not any(char in _NEEDS_QUOTES for char in value)


def encode_value(value: str, quote: str | None = None) -> str:
    """Return ``value`` written for a .env file, in the ``quote`` style if it fits.

    ``value`` is the literal value that Compose should read. A value that does not
    fit the requested style (unquoted or single-quoted) is written in double quotes
    with escapes, where ``$`` becomes ``\\$`` so that Compose does not interpolate it.
    """
    if quote == "'" and _fits_single_quotes(value):
        return f"'{value}'"
    if quote is None and _fits_unquoted(value):
        return value
    return _encode_double_quoted(value)


def set_value(text: str, key: str, value: str) -> str:
    """Return ``text`` with every ``key`` statement set to ``value``.

    Each line whose key is exactly ``key`` gets the new value, keeping ``export``,
    the spacing, the quote style where the value fits it, and an inline comment. A
    line with only the key becomes ``KEY=value``. Other keys, including longer keys
    that start with ``key``, and all other text stay byte for byte the same. When no
    line sets ``key``, ``KEY=value`` and a line break are appended, using the file's
    line breaks (CRLF when the text contains CRLF).

    ``value`` is the literal value. NOTE: a ``$`` is written as ``\\$``, which
    Compose reads as a literal ``$``, but get() then returns ``$$`` because it
    reports values before interpolation.
    """
    validate_key(key)
    _validate_value(key, value)

    lines = text.split("\n")
    found = False
    for entry in parse(text):
        if entry.key != key:
            continue
        found = True
        line = lines[entry.line_index]
        start, end = entry.value_span
        if entry.inherited:
            replacement = "=" + encode_value(value)
        else:
            replacement = encode_value(value, entry.quote)
        lines[entry.line_index] = line[:start] + replacement + line[end:]

    if found:
        return "\n".join(lines)

    newline = "\r\n" if "\r\n" in text else "\n"
    prefix = text
    if prefix and not prefix.endswith("\n"):
        prefix += newline
    return f"{prefix}{key}={encode_value(value)}{newline}"
