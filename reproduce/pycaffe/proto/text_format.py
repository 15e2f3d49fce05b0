"""``google.protobuf.text_format`` for the ``caffe_pb2`` messages (``Merge``, ``Parse``,
``MergeLines``, ``ParseLines``, ``MessageToString``, ``MessageToBytes``, ``PrintMessage``), on
the project's prototxt parser and emitter.

``text_format.Merge(open("solver.prototxt").read(), caffe_pb2.SolverParameter())`` is how
pycaffe scripts read prototxts. Parse errors are ``reproduce.caffe.errors.PrototxtError`` (a
``CaffeFormatError``) with line and column. Printing takes protobuf's ``as_one_line``, ``indent`` and ``as_utf8``
(``False`` here by default: non-ASCII text escaped in octal, as Caffe's C++ writer and the
protobuf of Caffe's days print it); any other printing or parsing option protobuf has is
refused unless it has protobuf's default value (``allow_unknown_field=True``, say, would read
text Caffe refuses), with a ``ValueError`` naming it.

``install_in_protobuf()`` — called by the ``import caffe`` shim (``reproduce.pycaffe.shim``) —
makes the real module's functions of those names dispatch: a ``caffe_pb2`` message goes to
the function here (given the options and defaults of the installed protobuf's signature),
anything else to protobuf's own function, unchanged. The real module's attributes are
replaced in place, so a script holding ``text_format`` from before ``import caffe`` sees them
too; a function imported by name before (``from google.protobuf.text_format import Merge``)
stays protobuf's. A project parse error raised through the real module is also an instance of
protobuf's ``text_format.ParseError``, so ``except text_format.ParseError`` catches it. Where
protobuf is not installed at all, ``install_in_protobuf`` registers this module as
``google.protobuf.text_format`` (``google.protobuf`` as an empty package around it) instead:
it handles ``caffe_pb2`` messages only and refuses anything else with a ``TypeError``.
"""
from __future__ import annotations

import functools
import inspect
import sys
import types
from typing import Any, Callable, Iterable

from reproduce.caffe import text
from reproduce.caffe.errors import PrototxtError
from reproduce.caffe.schema import refuse_project_extensions

from .messages import ProtoMessage

ParseError = PrototxtError   # (this module as google.protobuf.text_format: its ParseError)

# options protobuf's functions take that change nothing at these values (their defaults)
_PARSE_DEFAULTS = {"allow_unknown_extension": False, "allow_field_number": False,
                   "descriptor_pool": None, "allow_unknown_field": False,
                   "max_recursion_depth": (None, text.MAX_DEPTH)}
_PRINT_DEFAULTS = {"use_short_repeated_primitives": False, "pointy_brackets": False,
                   "use_index_order": False, "use_field_number": False, "descriptor_pool": None,
                   "message_formatter": None, "print_unknown_fields": False,
                   "force_colon": False, "float_format": None, "double_format": None}


def _check_options(function: str, options: dict, defaults: dict) -> None:
    for name, value in options.items():
        if name not in defaults:
            raise TypeError(f"text_format.{function}() got an unexpected keyword argument "
                            f"{name!r}")
        allowed = defaults[name] if isinstance(defaults[name], tuple) else (defaults[name],)
        if not any(value is a or (a is not None and value == a) for a in allowed):
            raise ValueError(f"text_format.{function}: {name}={value!r} is not supported for "
                             f"caffe_pb2 messages (the Caffe schema's parser and printer "
                             f"take only its default, {allowed[0]!r})")


def _message(function: str, message: Any) -> ProtoMessage:
    if not isinstance(message, ProtoMessage):
        raise TypeError(f"text_format.{function} (reproduce.pycaffe) handles caffe_pb2 "
                        f"messages; got {type(message).__name__}")
    return message


# -- parsing ------------------------------------------------------------------------------
def Merge(text_data: str | bytes, message: ProtoMessage, **options: Any) -> ProtoMessage:
    """Parse ``text_data`` into ``message``, merging with what it holds; returns it."""
    _message("Merge", message)
    _check_options("Merge", options, _PARSE_DEFAULTS)
    message.MergeFrom(text.parse(text_data, message.type_name))
    return message


def Parse(text_data: str | bytes, message: ProtoMessage, **options: Any) -> ProtoMessage:
    """Like ``Merge``, after clearing ``message``."""
    _message("Parse", message)
    _check_options("Parse", options, _PARSE_DEFAULTS)
    parsed = text.parse(text_data, message.type_name)
    message.Clear()
    message.MergeFrom(parsed)
    return message


def _joined(lines: Iterable[str | bytes]) -> str:
    return "\n".join(line.decode("utf-8") if isinstance(line, bytes) else line for line in lines)


def MergeLines(lines: Iterable[str | bytes], message: ProtoMessage, **options: Any) -> ProtoMessage:
    """``Merge`` of the text the lines make up."""
    return Merge(_joined(lines), message, **options)


def ParseLines(lines: Iterable[str | bytes], message: ProtoMessage, **options: Any) -> ProtoMessage:
    """``Parse`` of the text the lines make up."""
    return Parse(_joined(lines), message, **options)


# -- printing -----------------------------------------------------------------------------
def _quote_utf8(value: str) -> str:
    """protobuf's CEscape with ``as_utf8``: escapes and control characters as text_format
    writes them, other non-ASCII characters as they are."""
    out = []
    for char in value:
        code = ord(char)
        if char in text._ESCAPES:
            out.append(text._ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append("\\%03o" % code)
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _lines(message, as_utf8: bool) -> list[tuple[int, str]]:
    """(depth, text) per line of the text format of ``message``."""
    lines: list[tuple[int, str]] = []

    def walk(m, depth: int) -> None:
        for f, value in m.present_fields():
            for item in (value if f.repeated else (value,)):
                if f.is_message:
                    lines.append((depth, f"{f.name} {{"))
                    walk(item, depth + 1)
                    lines.append((depth, "}"))
                elif as_utf8 and f.type == "string":
                    lines.append((depth, f"{f.name}: {_quote_utf8(item)}"))
                else:
                    lines.append((depth, f"{f.name}: {text.format_scalar(f, item)}"))

    walk(message, 0)
    return lines


def _print(function: str, message: ProtoMessage, as_utf8: bool, as_one_line: bool,
           indent: int, options: dict) -> str:
    _message(function, message)
    _check_options(function, options, _PRINT_DEFAULTS)
    refuse_project_extensions(message, "a prototxt")
    lines = _lines(message, bool(as_utf8))
    if as_one_line:
        return " ".join(line for _, line in lines)
    pad = " " * int(indent)
    return "".join(f"{pad}{'  ' * depth}{line}\n" for depth, line in lines)


def MessageToString(message: ProtoMessage, as_utf8: bool = False, as_one_line: bool = False,
                    indent: int = 0, **options: Any) -> str:
    """The text format of ``message`` (Caffe's ``WriteProtoToTextFile`` layout)."""
    return _print("MessageToString", message, as_utf8, as_one_line, indent, options)


def MessageToBytes(message: ProtoMessage, **options: Any) -> bytes:
    """``MessageToString``, UTF-8 encoded."""
    return MessageToString(message, **options).encode("utf-8")


def PrintMessage(message: ProtoMessage, out, indent: int = 0, as_utf8: bool = False,
                 as_one_line: bool = False, **options: Any) -> None:
    """Write the text format of ``message`` to ``out`` (one-line: with protobuf's trailing
    space)."""
    result = _print("PrintMessage", message, as_utf8, as_one_line, indent, options)
    out.write(result + " " if as_one_line and result else result)


# -- google.protobuf.text_format ----------------------------------------------------------
# function -> (the index of its message argument, how many arguments it takes by position)
_DISPATCHED = {"Merge": (1, 2), "Parse": (1, 2), "MergeLines": (1, 2), "ParseLines": (1, 2),
               "MessageToString": (0, 1), "MessageToBytes": (0, 1), "PrintMessage": (0, 2)}


def install_in_protobuf() -> types.ModuleType:
    """Make ``google.protobuf.text_format`` take ``caffe_pb2`` messages (module docstring);
    the module that ``from google.protobuf import text_format`` now gives."""
    try:
        from google.protobuf import text_format as real
    except ImportError:
        return _register_as_protobuf()
    parse_error = _dual_parse_error(real)
    for name, (position, positional) in _DISPATCHED.items():
        original = getattr(real, name, None)
        if original is None or getattr(original, "_caffe_pb2_original", None) is not None:
            continue
        setattr(real, name, _dispatcher(name, position, positional, original, parse_error))
    return real


def _dual_parse_error(real: types.ModuleType) -> type:
    base = getattr(real, "ParseError", None)
    if not (isinstance(base, type) and issubclass(base, Exception)):
        return PrototxtError

    class ProtobufParseError(PrototxtError, base):
        """The project's ``PrototxtError`` that is also protobuf's ``text_format.ParseError``."""

        def __init__(self, message: str, path: str = "<string>", where: str = ""):
            PrototxtError.__init__(self, message, path, where)

    ProtobufParseError.__module__ = __name__
    return ProtobufParseError


def _dispatcher(name: str, position: int, positional: int, original: Callable,
                parse_error: type) -> Callable:
    mine = globals()[name]
    try:
        signature = inspect.signature(original)
    except (TypeError, ValueError):
        signature = None

    @functools.wraps(original)
    def dispatch(*args: Any, **kwargs: Any):
        message = kwargs.get("message", args[position] if len(args) > position else None)
        if not isinstance(message, ProtoMessage):
            return original(*args, **kwargs)
        if signature is not None:   # protobuf's own argument checks and defaults (as_utf8 …)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = list(bound.arguments.items())
            args = tuple(value for _, value in values[:positional])
            kwargs = {}
            for key, value in values[positional:]:
                if signature.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
                    kwargs.update(value)
                else:
                    kwargs[key] = value
        if position == 0:
            return mine(*args, **kwargs)
        try:
            return mine(*args, **kwargs)
        except PrototxtError as err:
            if isinstance(err, parse_error):
                raise
            raise parse_error(err.message, err.path, err.where) from err

    dispatch._caffe_pb2_original = original
    return dispatch


def _register_as_protobuf() -> types.ModuleType:
    """No protobuf installed: this module as ``google.protobuf.text_format``."""
    module = sys.modules[__name__]
    try:
        import google
    except ImportError:
        google = types.ModuleType("google")
        google.__path__ = []
        sys.modules["google"] = google
    package = sys.modules.get("google.protobuf")
    if package is None:
        package = types.ModuleType("google.protobuf")
        package.__path__ = []
        package.__doc__ = ("Registered by reproduce.pycaffe's import-caffe shim because protobuf "
                           "is not installed: only text_format, for caffe_pb2 messages.")
        sys.modules["google.protobuf"] = package
        google.protobuf = package
    sys.modules["google.protobuf.text_format"] = module
    package.text_format = module
    return module
