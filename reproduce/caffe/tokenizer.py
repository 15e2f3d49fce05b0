"""The tokenizer of protobuf's text format, as Caffe's ``ReadProtoFromTextFile`` sees it.

Mirrors ``google::protobuf::io::Tokenizer`` configured by ``TextFormat::Parser``: ``#``
comments to the end of the line, identifiers ``[A-Za-z_][A-Za-z0-9_]*``, numbers
(decimal, ``0x`` hex, leading-zero *octal*, floats with ``.``/exponent/an ``f`` suffix),
single- or double-quoted strings with C escapes, and one-character symbols. The token
errors are protobuf's own ("Need space between number and identifier.", …).

Positions are character offsets into the text; ``Tokenizer.where(offset)`` turns one into
``"line L:C"`` (both 1-based) only when an error is reported, so scanning stays linear.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import PrototxtError

IDENT, INTEGER, FLOAT, STRING, SYMBOL, END = (
    "identifier", "integer", "float", "string", "symbol", "end")

_WHITESPACE = re.compile(r"[ \t\n\r\v\f]*")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = re.compile(r"[0-9]*")
_OCTAL = re.compile(r"[0-7]*")
_HEX = re.compile(r"[0-9A-Fa-f]*")
_STRING_BODY = {'"': re.compile(r'[^"\\\n]*'), "'": re.compile(r"[^'\\\n]*")}
_SIMPLE_ESCAPES = {"a": b"\a", "b": b"\b", "f": b"\f", "n": b"\n", "r": b"\r", "t": b"\t",
                   "v": b"\v", "\\": b"\\", "?": b"?", "'": b"'", '"': b'"'}
_LETTER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_DIGIT = frozenset("0123456789")
_HEXDIGIT = frozenset("0123456789abcdefABCDEF")
_OCTALDIGIT = frozenset("01234567")


def _at(text: str, pos: int) -> str:
    """The character at ``pos``, or "" past the end (never a member of a character class)."""
    return text[pos] if pos < len(text) else ""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str        # the source text of the token ("" at the end of the input)
    offset: int      # where it starts in the input
    value: object = None  # STRING: the unescaped bytes


class Tokenizer:
    """Splits text into ``Token``s on demand; ``peek``/``next`` give one token of look-ahead."""

    def __init__(self, text: str, path: str):
        self.text = text
        self.path = path
        self.pos = 0
        self._peeked: Token | None = None

    def where(self, offset: int) -> str:
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return f"line {line}:{column}"

    def error(self, message: str, offset: int) -> PrototxtError:
        return PrototxtError(message, self.path, self.where(offset))

    def peek(self) -> Token:
        if self._peeked is None:
            self._peeked = self._scan()
        return self._peeked

    def next(self) -> Token:
        token = self.peek()
        self._peeked = None
        return token

    def _skip_blanks_and_comments(self) -> None:
        text = self.text
        while True:
            self.pos = _WHITESPACE.match(text, self.pos).end()
            if self.pos < len(text) and text[self.pos] == "#":
                newline = text.find("\n", self.pos)
                self.pos = len(text) if newline < 0 else newline
            else:
                return

    def _scan(self) -> Token:
        self._skip_blanks_and_comments()
        text, start = self.text, self.pos
        if start >= len(text):
            return Token(END, "", start)
        char = text[start]
        if char in _LETTER:
            self.pos = _IDENT.match(text, start).end()
            return Token(IDENT, text[start:self.pos], start)
        if char in _DIGIT or (char == "." and _at(text, start + 1) in _DIGIT):
            return self._number(start)
        if char in "\"'":
            return self._string(start, char)
        if not (" " < char < "\x7f"):
            what = f"U+{ord(char):04X}" if char.isprintable() else repr(char)
            raise self.error(f"unexpected character {what} outside a string", start)
        self.pos = start + 1
        return Token(SYMBOL, char, start)

    def _number(self, start: int) -> Token:
        text = self.text
        pos = start + 1
        is_float = False
        first = text[start]
        if first == "0" and _at(text, pos) in ("x", "X"):
            end = _HEX.match(text, pos + 1).end()
            if end == pos + 1:
                raise self.error('"0x" must be followed by hex digits.', end)
            pos = end
            is_hex_or_octal = True
        elif first == "0" and _at(text, pos) in _DIGIT:
            pos = _OCTAL.match(text, pos).end()
            if _at(text, pos) in _DIGIT:
                raise self.error("Numbers starting with leading zero must be in octal.", pos)
            is_hex_or_octal = True
        else:
            is_hex_or_octal = False
            if first == ".":
                is_float = True
                pos = _DIGITS.match(text, pos).end()
            else:
                pos = _DIGITS.match(text, pos).end()
                if text.startswith(".", pos):
                    is_float = True
                    pos = _DIGITS.match(text, pos + 1).end()
            if _at(text, pos) in ("e", "E"):
                is_float = True
                pos += 1
                if _at(text, pos) in ("+", "-"):
                    pos += 1
                end = _DIGITS.match(text, pos).end()
                if end == pos:
                    raise self.error('"e" must be followed by exponent.', pos)
                pos = end
            if _at(text, pos) in ("f", "F"):
                is_float = True
                pos += 1
        if _at(text, pos) in _LETTER:
            raise self.error("Need space between number and identifier.", pos)
        if text.startswith(".", pos):
            if is_hex_or_octal:
                raise self.error("Hex and octal numbers must be integers.", pos)
            raise self.error("Already saw decimal point or exponent; can't have another one.", pos)
        self.pos = pos
        return Token(FLOAT if is_float else INTEGER, text[start:pos], start)

    def _string(self, start: int, quote: str) -> Token:
        text = self.text
        body = _STRING_BODY[quote]
        pos = start + 1
        chunks: list[bytes] = []
        while True:
            end = body.match(text, pos).end()
            # Text outside the ASCII range keeps its source bytes (the file is read as UTF-8,
            # undecodable bytes as surrogate escapes), as protobuf copies them verbatim.
            chunks.append(text[pos:end].encode("utf-8", "surrogateescape"))
            pos = end
            if pos >= len(text):
                raise self.error("Unexpected end of string.", pos)
            char = text[pos]
            if char == quote:
                self.pos = pos + 1
                return Token(STRING, text[start:self.pos], start, b"".join(chunks))
            if char == "\n":
                raise self.error("String literals cannot cross line boundaries.", pos)
            escaped, pos = self._escape(pos)
            chunks.append(escaped)

    def _escape(self, backslash: int) -> tuple[bytes, int]:
        """Decode the escape sequence starting at ``backslash``; return its bytes and the end."""
        text = self.text
        pos = backslash + 1
        char = _at(text, pos)
        if char in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[char], pos + 1
        if char in _OCTALDIGIT:
            end = pos + 1
            while end < pos + 3 and _at(text, end) in _OCTALDIGIT:
                end += 1
            # protobuf stores static_cast<char>(code): \777 becomes 0xFF, not an error.
            return bytes([int(text[pos:end], 8) & 0xFF]), end
        if char in ("x", "X"):
            end = pos + 1
            while end < pos + 3 and _at(text, end) in _HEXDIGIT:
                end += 1
            if end == pos + 1:
                raise self.error("Expected hex digits for escape sequence.", end)
            return bytes([int(text[pos + 1:end], 16)]), end
        if char in ("u", "U"):
            count = 4 if char == "u" else 8
            digits = text[pos + 1:pos + 1 + count]
            if len(digits) != count or not all(d in _HEXDIGIT for d in digits):
                raise self.error(f"Expected {'four' if count == 4 else 'eight'} hex digits "
                                 f"for \\{char} escape sequence.", pos + 1)
            code = int(digits, 16)
            end = pos + 1 + count
            if code > 0x10FFFF:
                raise self.error("Expected eight hex digits up to 10ffff for \\U escape sequence",
                                 pos + 1)
            if 0xD800 <= code <= 0xDBFF and text[end:end + 2] == "\\u":
                low_digits = text[end + 2:end + 6]
                if len(low_digits) == 4 and all(d in _HEXDIGIT for d in low_digits):
                    low = int(low_digits, 16)
                    if 0xDC00 <= low <= 0xDFFF:
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        end += 6
            if 0xD800 <= code <= 0xDFFF:
                raise self.error(f"unpaired surrogate \\{char}{digits} in string literal",
                                 backslash)
            return chr(code).encode("utf-8"), end
        raise self.error("Invalid escape sequence in string literal.", backslash)
