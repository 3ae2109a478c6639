"""Errors about input data, shared by every stage (no heavy imports here).

    DataError            base: the stage cannot run on the data it was given
      DataFormatError    a file is malformed; message "file:line: what is wrong"
      DataMissingError   a file or folder the stage reads is absent; message names it

:func:`arkbench.stage.stage_main` turns any :class:`DataError` into ONE line on
stderr (``[stage] data error: <message>``) and exit status 2, the same contract as
bad params; outputs are written atomically, so nothing half-written is left.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class DataError(Exception):
    """The stage's input data is missing or malformed; the message names the file."""


class DataFormatError(DataError, ValueError):
    """A data file is malformed; the message starts with ``file:line:``."""


class DataMissingError(DataError, FileNotFoundError):
    """A data file or folder the stage reads does not exist; the message names it."""


def read_json(path: str | os.PathLike) -> Any:
    """json.loads of `path`; DataMissingError / DataFormatError (``file:line:col``) instead of tracebacks."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataMissingError(f"{p}: file not found") from None
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{p}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
