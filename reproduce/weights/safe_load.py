"""Reading ``.pth``/``.pt`` files without running code from them, with one-line reasons.

``load_tensors(path)`` is ``torch.load(path, map_location="cpu", weights_only=True)``: only
tensors, numbers, strings and plain containers are unpickled, so a file from elsewhere
cannot execute anything. When torch refuses a file it explains at length, with terminal
colour codes and advice to load it unsafely; ``TensorFileError`` keeps only what went wrong
(the unsupported object, the corrupt archive), for an error line that names the file.
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Any


class TensorFileError(ValueError):
    """A file ``torch.load(..., weights_only=True)`` refuses; ``str`` is the one-line reason."""


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:\s*(\S[^\n]*)")


def load_tensors(path: str | os.PathLike) -> Any:
    """What ``path`` holds, loaded with ``weights_only=True`` onto the CPU."""
    import torch

    try:
        with warnings.catch_warnings():  # torch warns about unsafe pickles; they are refused anyway
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files
        raise TensorFileError(refusal_reason(err)) from None


def refusal_reason(err: Exception) -> str:
    """torch's refusal of a file, in one line without its advice."""
    text = _ANSI_ESCAPE.sub("", str(err)).strip()
    detail = _UNPICKLER_DETAIL.search(text)
    if detail:
        reason = _first_sentence(detail.group(1))
        if reason.startswith("Unsupported global"):
            return (f"it holds Python objects other than tensors and plain containers "
                    f"({reason}), which are never loaded")
        return f"it cannot be unpickled as tensors ({reason})"
    first_line = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {_first_sentence(first_line)}" if first_line else type(err).__name__


def _first_sentence(line: str) -> str:
    return line.split(". ")[0].rstrip(".")
