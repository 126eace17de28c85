"""JSON text parsed with bounds: nesting depth, and no NUL characters (which no database text column takes)."""

from __future__ import annotations

import json
from typing import Any

from tensorq.core.errors import InvalidRequest

# Deeper than any spec, dataset line or Keras config needs; far below Python's recursion limit.
MAX_JSON_DEPTH = 64


def loads(text: str | bytes, *, what: str = "JSON", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse ``text``; InvalidRequest (400) when it is malformed, nested deeper than ``max_depth`` or holds NUL."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise InvalidRequest(f"{what} is nested deeper than {max_depth} levels", code="too_deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc}") from None
    check(value, what=what, max_depth=max_depth)
    return value


def check(value: Any, *, what: str = "JSON", max_depth: int = MAX_JSON_DEPTH) -> None:
    """Walk ``value`` without recursion; InvalidRequest when it nests deeper than ``max_depth`` or holds NUL."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise InvalidRequest(f"{what} contains a NUL character", code="invalid_characters")
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise InvalidRequest(f"{what} is nested deeper than {max_depth} levels", code="too_deep")
            children = item.items() if isinstance(item, dict) else ((None, v) for v in item)
            for key, child in children:
                if isinstance(key, str) and "\x00" in key:
                    raise InvalidRequest(f"{what} contains a NUL character", code="invalid_characters")
                stack.append((child, depth + 1))
