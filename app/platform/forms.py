"""Request form helpers shared by routers: JSON carried in a multipart form field.

A route takes such a field as ``Annotated[str, Form(description=...), JsonPart(Model)]`` and parses it with
:func:`parse_json_field`: the OpenAPI then gives the part ``Model``'s schema, and
:func:`declare_multipart` (run by ``app.platform.params.install_contract``) its ``encoding`` ``contentType:
application/json``, so a client (or a fuzzer) knows the part is a JSON document and what it must hold.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, GetJsonSchemaHandler, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

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


class JsonPart:
    """Annotation of a multipart form field that carries ``model`` as JSON: the field is validated as the text
    it is (:func:`parse_json_field` parses it, bounded, with the field's name in its 422), its JSON schema is
    ``model``'s.

    >>> from typing import Annotated
    >>> from pydantic import TypeAdapter
    >>> class Fix(BaseModel):
    ...     accuracy_m: float
    >>> part = TypeAdapter(Annotated[str, JsonPart(Fix)])
    >>> part.json_schema()["title"], part.json_schema()["required"], part.validate_python("{}")
    ('Fix', ['accuracy_m'], '{}')
    """

    __slots__ = ("model",)

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        # The model's own generation (a $ref to its component, its enums as components too) needs the generator
        # behind the handler, which pydantic does not promise to expose; without it the schema is inlined.
        generator = getattr(handler, "generate_json_schema", None)
        schema: JsonSchemaValue = (generator.generate_inner if generator is not None else handler)(
            self.model.__pydantic_core_schema__)
        return schema


def _multipart_schemas(openapi: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    components = openapi.get("components", {}).get("schemas", {})
    for path_item in openapi.get("paths", {}).values():
        for operation in path_item.values():
            media = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data") \
                if isinstance(operation, dict) else None
            if not isinstance(media, dict):
                continue
            schema = media.get("schema", {})
            ref = schema.get("$ref", "")
            yield media, components.get(ref.rsplit("/", 1)[-1], {}) if ref else schema


def _is_file(schema: dict[str, Any]) -> bool:
    items = schema.get("items")
    return (schema.get("contentMediaType") == "application/octet-stream" or schema.get("format") == "binary"
            or (schema.get("type") == "array" and isinstance(items, dict) and _is_file(items)))


def declare_multipart(openapi: dict[str, Any]) -> None:
    """Make every multipart body of the OpenAPI say how its parts are sent (in place):

    * a part whose schema is an object (a :class:`JsonPart`) gets the ``encoding`` ``contentType:
      application/json`` (OpenAPI's default for an object part; saying it lets clients and fuzzers send the part
      as JSON without guessing);
    * an optional file part (``UploadFile | None``) is optional, not nullable: a multipart body has no null, a
      part is sent or left out (FastAPI declared ``anyOf [file, null]``, and a ``null`` sent as the text
      ``null`` is refused: a text is not a file).

    >>> doc = {"paths": {"/a": {"post": {"requestBody": {"content": {"multipart/form-data": {"schema": {
    ...     "$ref": "#/components/schemas/B"}}}}}}}, "components": {"schemas": {
    ...     "B": {"properties": {"form": {"$ref": "#/components/schemas/F"}, "proof": {"anyOf": [
    ...         {"type": "string", "contentMediaType": "application/octet-stream"}, {"type": "null"}],
    ...         "title": "Proof"}}},
    ...     "F": {"type": "object"}}}}
    >>> declare_multipart(doc)
    >>> doc["paths"]["/a"]["post"]["requestBody"]["content"]["multipart/form-data"]["encoding"]
    {'form': {'contentType': 'application/json'}}
    >>> doc["components"]["schemas"]["B"]["properties"]["proof"]
    {'title': 'Proof', 'type': 'string', 'contentMediaType': 'application/octet-stream'}
    """
    components = openapi.get("components", {}).get("schemas", {})
    for media, body in _multipart_schemas(openapi):
        properties = body.get("properties", {})
        for name, part in properties.items():
            ref = part.get("$ref", "")
            resolved = components.get(ref.rsplit("/", 1)[-1], {}) if ref else part
            if resolved.get("type") == "object":
                media.setdefault("encoding", {}).setdefault(name, {"contentType": "application/json"})
            options = part.get("anyOf", [])
            files = [option for option in options if _is_file(option)]
            if len(files) == 1 and len(options) == 2 and {"type": "null"} in options:
                properties[name] = {**{k: v for k, v in part.items() if k not in ("anyOf", "default")}, **files[0]}
