"""Request form helpers shared by routers: JSON carried in a multipart form field."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from gis.errors import InvalidInputError

#: Deepest nesting of arrays and objects a JSON form field may have (the forms nest two levels).
MAX_JSON_DEPTH = 32
#: Longest JSON form field, characters (an application form is ~1 kB).
MAX_JSON_FIELD_CHARS = 65_536


# A JSON string (with its escapes) or one bracket; only the brackets outside strings nest.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


def json_depth(raw: str) -> int:
    """How deeply arrays and objects nest in ``raw`` (brackets inside strings do not count), in one linear scan.

    >>> json_depth('{"a": [1, {"b": "[[["}]}'), json_depth("[]"), json_depth('"x"')
    (3, 1, 0)
    """
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(raw):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def parse_json_field(raw: str, model: type[BaseModel], field: str) -> Any:
    """Validate a JSON form field against ``model``; errors answer 422 ``INVALID_INPUT`` naming the field.

    The field is bounded before it is parsed: at most :data:`MAX_JSON_FIELD_CHARS` characters and
    :data:`MAX_JSON_DEPTH` levels of nesting (``json.loads`` raised ``RecursionError``, a 500, on deeply nested
    arrays).
    """
    if len(raw) > MAX_JSON_FIELD_CHARS:
        raise InvalidInputError(f"{field}: longer than {MAX_JSON_FIELD_CHARS} characters.", field=field,
                                max_chars=MAX_JSON_FIELD_CHARS)
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise InvalidInputError(f"{field}: nested deeper than {MAX_JSON_DEPTH} levels.", field=field,
                                max_depth=MAX_JSON_DEPTH)
    try:
        return model.model_validate(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{field}: not JSON ({exc.msg}).", field=field) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise InvalidInputError(f"{field}.{path}: {first['msg']}", field=f"{field}.{path}",
                                errors=[{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                                        for e in exc.errors()]) from None
