"""Request form helpers shared by routers: JSON carried in a multipart form field."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from gis.errors import InvalidInputError


def parse_json_field(raw: str, model: type[BaseModel], field: str) -> Any:
    """Validate a JSON form field against ``model``; errors answer 422 ``REQUEST_INVALID`` naming the field."""
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
