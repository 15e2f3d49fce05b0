"""Safe parsing of a Caffe ``python_param.param_str``.

The reference layers run ``eval(self.param_str)``; here the string is parsed with
``ast.literal_eval`` (literals only: dicts, lists, tuples, strings, numbers, booleans,
``None``) and never evaluated. The ``dict(key=value, …)`` spelling of the reference
docstrings is accepted too, with literal values only. The result must be a dict.
"""
from __future__ import annotations

import ast


class ParamStrError(ValueError):
    """A ``param_str`` that is not a literal dict; the message names the layer."""


def _literal_dict_call(node: ast.AST):
    """``dict(a=1, b='x')`` with literal arguments only → the dict; otherwise None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict"
            and not node.args and all(keyword.arg is not None for keyword in node.keywords)):
        return {keyword.arg: ast.literal_eval(keyword.value) for keyword in node.keywords}
    return None


def parse_param_str(text: str, layer: str = "?") -> dict:
    """The dict a ``param_str`` describes, parsed without evaluating code.

    ``layer`` names the layer in error messages. Text still carrying prototxt escapes
    (``{\\'split\\': …}``, as copied from a prototxt file) is unescaped first.
    """
    if not isinstance(text, str):
        raise ParamStrError(f"layer {layer!r}: param_str must be a string, got {type(text).__name__}")
    source = text.strip()
    if "\\'" in source or '\\"' in source:
        source = source.replace("\\'", "'").replace('\\"', '"')
    if not source:
        raise ParamStrError(f"layer {layer!r}: param_str is empty; the data layer needs its parameters")
    try:
        tree = ast.parse(source, mode="eval").body
        value = _literal_dict_call(tree)
        if value is None:
            value = ast.literal_eval(tree)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as error:
        raise ParamStrError(f"layer {layer!r}: param_str {text!r} is not a literal dict "
                            f"(only literals are accepted, nothing is evaluated): {error}") from None
    if not isinstance(value, dict):
        raise ParamStrError(f"layer {layer!r}: param_str must describe a dict, got {type(value).__name__}")
    return value
