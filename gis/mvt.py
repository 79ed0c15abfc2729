"""Mapbox Vector Tile 2.1 encoder, vectorised with numpy over the features of a layer."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from gis.tiles import DEFAULT_EXTENT

__all__ = [
    "AttributeColumn",
    "AttributeTable",
    "GeometryKind",
    "encode_layer",
    "encode_line_or_polygon_layer",
    "encode_point_layer",
]

UInt8Array = npt.NDArray[np.uint8]
IntArray = npt.NDArray[np.int64]
GeometryKind = Literal["point", "linestring", "polygon"]
AttributeValue = str | float | int | bool | None

# MVT geometry types (vector_tile.proto, Tile.GeomType).
_GEOM_TYPE = {"point": 1, "linestring": 2, "polygon": 3}
# Protocol-buffer field keys, (field_number << 3) | wire_type, of vector_tile.proto 2.1.
_TILE_LAYER = 0x1A  # Tile.layers = 3, length-delimited
_LAYER_NAME = 0x0A  # Layer.name = 1
_LAYER_FEATURE = 0x12  # Layer.features = 2
_LAYER_KEY = 0x1A  # Layer.keys = 3
_LAYER_VALUE = 0x22  # Layer.values = 4
_LAYER_EXTENT = 0x28  # Layer.extent = 5, varint
_LAYER_VERSION = 0x78  # Layer.version = 15, varint
_FEATURE_ID = 0x08  # Feature.id = 1, varint
_FEATURE_TAGS = 0x12  # Feature.tags = 2, packed
_FEATURE_TYPE = 0x18  # Feature.type = 3, varint
_FEATURE_GEOMETRY = 0x22  # Feature.geometry = 4, packed
_VALUE_STRING = 0x0A  # Value.string_value = 1
_VALUE_DOUBLE = 0x19  # Value.double_value = 3, 64-bit
_VALUE_SINT = 0x30  # Value.sint_value = 6, zigzag varint
_VALUE_BOOL = 0x38  # Value.bool_value = 7
# Geometry commands (MVT spec §4.3.1): id | count << 3.
_MOVE_TO_1 = 9
_CLOSE_PATH = 15
_MAX_VARINT_BYTES = 10
#: Up to this many features a plain Python loop beats the vectorised path (its fixed cost is ~50 numpy calls).
SMALL_LAYER_FEATURES = 96
_ONE_BYTE = tuple(bytes((value,)) for value in range(128))


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _ONE_BYTE[value]
    if value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if value < 0x200000:
        return bytes(((value & 0x7F) | 0x80, ((value >> 7) & 0x7F) | 0x80, value >> 14))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _varints_py(values: Sequence[int]) -> bytes:
    return b"".join([_varint(v) for v in values])


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63)


def _varints(values: npt.NDArray[np.uint64]) -> tuple[UInt8Array, IntArray]:
    """Encode unsigned integers as protobuf varints; return the bytes and the byte count of each value."""
    values = np.ascontiguousarray(values, dtype=np.uint64)
    counts = np.ones(values.shape[0], dtype=np.int64)
    for index in range(1, _MAX_VARINT_BYTES):
        more = (values >> np.uint64(7 * index)) > 0
        if not more.any():
            break
        counts += more
    starts = np.zeros(values.shape[0], dtype=np.int64)
    if values.shape[0] > 1:
        np.cumsum(counts[:-1], out=starts[1:])
    out = np.empty(int(counts.sum()), dtype=np.uint8)
    for index in range(int(counts.max(initial=0))):
        has = counts > index
        chunk = (values[has] >> np.uint64(7 * index)) & np.uint64(0x7F)
        continues = counts[has] > index + 1
        out[starts[has] + index] = (chunk | (continues.astype(np.uint64) << np.uint64(7))).astype(np.uint8)
    return out, counts


def _zigzag_array(values: IntArray) -> npt.NDArray[np.uint64]:
    values = values.astype(np.int64, copy=False)
    return ((values << 1) ^ (values >> 63)).astype(np.uint64)


def _row_sums(per_value: IntArray, row_counts: IntArray) -> IntArray:
    """Sum ``per_value`` within consecutive groups of ``row_counts`` values (empty groups give 0)."""
    rows = np.repeat(np.arange(row_counts.shape[0]), row_counts)
    return np.bincount(rows, weights=per_value, minlength=row_counts.shape[0]).astype(np.int64)


def _concat_rows(parts: Sequence[tuple[UInt8Array, IntArray]], n_rows: int) -> tuple[UInt8Array, IntArray]:
    """Interleave ragged byte columns row by row: row i = part0[i] + part1[i] + ….

    Each part is ``(flat bytes, byte length of each row)`` with rows stored one after another.
    """
    total = np.zeros(n_rows, dtype=np.int64)
    for _flat, lengths in parts:
        total += lengths
    row_start = np.zeros(n_rows, dtype=np.int64)
    if n_rows > 1:
        np.cumsum(total[:-1], out=row_start[1:])
    out = np.empty(int(total.sum()), dtype=np.uint8)
    offset_in_row = np.zeros(n_rows, dtype=np.int64)
    for flat, lengths in parts:
        if flat.shape[0]:
            source_start = np.zeros(n_rows, dtype=np.int64)
            if n_rows > 1:
                np.cumsum(lengths[:-1], out=source_start[1:])
            shift = np.repeat(row_start + offset_in_row - source_start, lengths)
            out[shift + np.arange(flat.shape[0], dtype=np.int64)] = flat
        offset_in_row += lengths
    return out, total


def _constant(byte_values: Sequence[int], n_rows: int) -> tuple[UInt8Array, IntArray]:
    row = np.array(byte_values, dtype=np.uint8)
    return np.tile(row, n_rows), np.full(n_rows, row.shape[0], dtype=np.int64)


def _gather(buffer: UInt8Array, offsets: IntArray, indices: IntArray) -> UInt8Array:
    """Concatenate ``buffer[offsets[i]:offsets[i + 1]]`` for each ``i`` in ``indices``."""
    starts = offsets[indices]
    lengths = offsets[indices + 1] - starts
    if not lengths.shape[0]:
        return np.empty(0, dtype=np.uint8)
    first = np.zeros(lengths.shape[0], dtype=np.int64)
    np.cumsum(lengths[:-1], out=first[1:])
    return buffer[np.repeat(starts - first, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)]


def _value_message(value: str | float | int | bool) -> bytes:
    """Return ``Layer.values`` entry (field key, length, ``Value`` message) for one attribute value."""
    if isinstance(value, bool):
        body = bytes((_VALUE_BOOL, int(value)))
    elif isinstance(value, int | np.integer):
        body = bytes((_VALUE_SINT,)) + _varint(_zigzag(int(value)))
    elif isinstance(value, float | np.floating):
        body = bytes((_VALUE_DOUBLE,)) + struct.pack("<d", float(value))
    else:
        text = str(value).encode("utf-8")
        body = bytes((_VALUE_STRING,)) + _varint(len(text)) + text
    return bytes((_LAYER_VALUE,)) + _varint(len(body)) + body


@dataclass(frozen=True, eq=False)
class AttributeColumn:
    """One feature attribute (MVT key) over a whole snapshot, with its values already encoded.

    ``codes[i]`` is the index of feature ``i``'s value in the column's table (−1: no value, no tag);
    entry ``j`` of the table is ``value_bytes[value_offsets[j]:value_offsets[j + 1]]``, a complete
    ``Layer.values`` field. Encoding once at snapshot time leaves only integer work per tile.
    """

    key: str
    codes: IntArray
    value_offsets: IntArray
    value_bytes: UInt8Array

    @cached_property
    def value_list(self) -> tuple[bytes, ...]:
        """The encoded table entries as Python bytes (used by the small-tile path)."""
        data = self.value_bytes.tobytes()
        offsets = self.value_offsets.tolist()
        return tuple(data[offsets[j]:offsets[j + 1]] for j in range(len(offsets) - 1))

    @classmethod
    def from_values(cls, key: str, values: Sequence[AttributeValue] | npt.NDArray[np.generic]) -> AttributeColumn:
        """Build a column from one value per feature; ``None`` and NaN mean "no value".

        Float arrays are encoded as doubles, integers as ``sint``, booleans as ``bool``, anything else as
        strings.

        Examples
        --------
        >>> column = AttributeColumn.from_values("class", ["<50", ">80", "<50", None])
        >>> column.codes.tolist()
        [0, 1, 0, -1]
        """
        array = np.asarray(values)
        if array.dtype.kind == "f":
            finite = np.isfinite(array)
            unique, inverse = np.unique(array[finite], return_inverse=True)
            codes = np.full(array.shape[0], -1, dtype=np.int64)
            codes[finite] = inverse
            messages = np.empty((unique.shape[0], 11), dtype=np.uint8)
            messages[:, 0:3] = (_LAYER_VALUE, 9, _VALUE_DOUBLE)
            messages[:, 3:] = unique.astype("<f8").view(np.uint8).reshape(-1, 8)
            offsets = np.arange(unique.shape[0] + 1, dtype=np.int64) * 11
            return cls(key, codes, offsets, messages.reshape(-1))
        table: dict[object, int] = {}
        encoded: list[bytes] = []
        codes_list: list[int] = []
        for value in array.tolist():
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                codes_list.append(-1)
                continue
            marker = (type(value) is bool, value)
            code = table.get(marker)
            if code is None:
                code = table[marker] = len(encoded)
                encoded.append(_value_message(value))
            codes_list.append(code)
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(message) for message in encoded], out=offsets[1:])
        flat = np.frombuffer(b"".join(encoded), dtype=np.uint8) if encoded else np.empty(0, dtype=np.uint8)
        return cls(key, np.asarray(codes_list, dtype=np.int64), offsets, flat)


@dataclass(frozen=True, eq=False)
class AttributeTable:
    """A layer's attribute columns joined into one value table, built once per snapshot.

    ``codes[i, k]`` is feature ``i``'s value of column ``k`` as an index into the joint table (−1: none);
    the joint table lists column 0's values, then column 1's, and so on. A tile then takes the values
    its features use with one ``np.unique`` over all columns instead of one per column (8 columns: ~8x
    fewer numpy calls per tile), and gets the same bytes.
    """

    columns: tuple[AttributeColumn, ...]
    codes: npt.NDArray[np.int32] | IntArray
    value_offsets: IntArray
    value_bytes: UInt8Array

    @classmethod
    def from_columns(cls, columns: Sequence[AttributeColumn]) -> AttributeTable:
        """Join the columns (all of one length: one value per feature of the snapshot)."""
        columns = tuple(columns)
        n = columns[0].codes.shape[0] if columns else 0
        sizes = [column.value_offsets.shape[0] - 1 for column in columns]
        total = sum(sizes)
        code_type = np.int32 if total < 2**31 else np.int64
        codes = np.full((n, len(columns)), -1, dtype=code_type)
        base = 0
        for k, (column, size) in enumerate(zip(columns, sizes, strict=True)):
            has = column.codes >= 0
            codes[has, k] = column.codes[has] + base
            base += size
        offsets = np.zeros(total + 1, dtype=np.int64)
        start = 0
        byte_base = 0
        for column, size in zip(columns, sizes, strict=True):
            offsets[start + 1:start + size + 1] = column.value_offsets[1:] + byte_base
            byte_base += int(column.value_offsets[-1])
            start += size
        data = np.concatenate([c.value_bytes for c in columns]) if columns else np.empty(0, dtype=np.uint8)
        return cls(columns, codes, offsets, data)


Attributes = Sequence[AttributeColumn] | AttributeTable
"""A layer's attributes: the columns, or (faster per tile) the :class:`AttributeTable` built from them once."""


def _table(attributes: Attributes) -> AttributeTable:
    return attributes if isinstance(attributes, AttributeTable) else AttributeTable.from_columns(attributes)


def _tags_and_values(table: AttributeTable, positions: IntArray) -> tuple[
        tuple[UInt8Array, IntArray], UInt8Array]:
    """Per-feature packed tag bytes and the layer's value table for the features at ``positions``."""
    n, k = positions.shape[0], len(table.columns)
    block = table.codes[positions]
    present = block >= 0
    unique, value_index = np.unique(block[present], return_inverse=True)
    pairs = np.empty((int(value_index.shape[0]), 2), dtype=np.uint64)
    pairs[:, 0] = np.broadcast_to(np.arange(k, dtype=np.uint64), (n, k))[present]
    pairs[:, 1] = value_index
    tag_bytes, per_value = _varints(pairs.reshape(-1))
    tag_lengths = _row_sums(per_value, 2 * present.sum(axis=1))
    return (tag_bytes, tag_lengths), _gather(table.value_bytes, table.value_offsets, unique.astype(np.int64))


def _length_prefixed(field_key: int, part: tuple[UInt8Array, IntArray]) -> list[tuple[UInt8Array, IntArray]]:
    flat, lengths = part
    n = lengths.shape[0]
    return [_constant((field_key,), n), _varints(lengths.astype(np.uint64)), (flat, lengths)]


def encode_layer(
    name: str,
    *,
    feature_ids: npt.NDArray[np.integer] | None,
    geom_types: npt.NDArray[np.integer],
    geometry: tuple[npt.NDArray[np.uint64], IntArray],
    columns: Attributes,
    positions: IntArray,
    extent: int = DEFAULT_EXTENT,
) -> bytes:
    """Encode one ``Tile.layers`` field (key, length, ``Layer`` message), or ``b""`` for no features.

    Parameters
    ----------
    name
        The layer name.
    feature_ids
        Unsigned feature ids (``Feature.id``), one per feature, or None to leave them out.
    geom_types
        MVT geometry type per feature (1 point, 2 linestring, 3 polygon).
    geometry
        ``(commands, counts)``: the features' geometry command integers, already zigzag-encoded where
        needed, stored one feature after another; ``counts[i]`` integers belong to feature ``i``.
    columns
        Attributes of the whole snapshot (its columns, or their :class:`AttributeTable`); ``positions`` picks
        each feature's row.
    positions
        Row of each feature in ``columns``.
    extent
        Tile units per side.
    """
    n = positions.shape[0]
    if n == 0:
        return b""
    plain = columns.columns if isinstance(columns, AttributeTable) else tuple(columns)
    if n <= SMALL_LAYER_FEATURES:
        features, values = _features_small(feature_ids, geom_types, geometry, plain, positions)
    else:
        features, values = _features_vectorised(feature_ids, geom_types, geometry, _table(columns), positions)
    name_bytes = name.encode("utf-8")
    head = bytes((_LAYER_VERSION, 2, _LAYER_NAME)) + _varint(len(name_bytes)) + name_bytes
    keys = b"".join(bytes((_LAYER_KEY,)) + _varint(len(k)) + k
                    for k in (c.key.encode("utf-8") for c in plain))
    layer = b"".join((head, features, keys, values, bytes((_LAYER_EXTENT,)), _varint(extent)))
    return bytes((_TILE_LAYER,)) + _varint(len(layer)) + layer


def _features_vectorised(
    feature_ids: npt.NDArray[np.integer] | None, geom_types: npt.NDArray[np.integer],
    geometry: tuple[npt.NDArray[np.uint64], IntArray], table: AttributeTable, positions: IntArray,
) -> tuple[bytes, bytes]:
    """``Layer.features`` and ``Layer.values`` fields, built with whole-array numpy operations."""
    n = positions.shape[0]
    commands, counts = geometry
    geom_bytes, per_command = _varints(commands)
    geom_part = (geom_bytes, _row_sums(per_command, counts))
    tags, values = _tags_and_values(table, positions)
    parts: list[tuple[UInt8Array, IntArray]] = []
    if feature_ids is not None:
        parts += [_constant((_FEATURE_ID,), n), _varints(np.asarray(feature_ids, dtype=np.uint64))]
    parts += _length_prefixed(_FEATURE_TAGS, tags)
    type_bytes = np.empty(2 * n, dtype=np.uint8)
    type_bytes[0::2] = _FEATURE_TYPE
    type_bytes[1::2] = np.asarray(geom_types, dtype=np.uint8)
    parts.append((type_bytes, np.full(n, 2, dtype=np.int64)))
    parts += _length_prefixed(_FEATURE_GEOMETRY, geom_part)
    features = _concat_rows(_length_prefixed(_LAYER_FEATURE, _concat_rows(parts, n)), n)[0]
    return features.tobytes(), values.tobytes()


def _features_small(
    feature_ids: npt.NDArray[np.integer] | None, geom_types: npt.NDArray[np.integer],
    geometry: tuple[npt.NDArray[np.uint64], IntArray], columns: Sequence[AttributeColumn], positions: IntArray,
) -> tuple[bytes, bytes]:
    """The same fields as :func:`_features_vectorised`, with a Python loop (cheaper for a few features)."""
    n = positions.shape[0]
    tags: list[list[int]] = [[] for _ in range(n)]
    values: list[bytes] = []
    for k, column in enumerate(columns):
        local: dict[int, int] = {}
        table = column.value_list
        for i, code in enumerate(column.codes[positions].tolist()):
            if code < 0:
                continue
            index = local.get(code)
            if index is None:
                index = local[code] = len(values)
                values.append(table[code])
            tags[i] += (k, index)
    commands, counts = geometry
    flat = commands.tolist()
    ids = None if feature_ids is None else np.asarray(feature_ids).tolist()
    types = np.asarray(geom_types).tolist()
    out: list[bytes] = []
    start = 0
    for i, count in enumerate(np.asarray(counts).tolist()):
        geom = _varints_py(flat[start:start + count])
        start += count
        tag = _varints_py(tags[i])
        body = b"".join((
            b"" if ids is None else bytes((_FEATURE_ID,)) + _varint(ids[i]),
            bytes((_FEATURE_TAGS,)), _varint(len(tag)), tag, bytes((_FEATURE_TYPE, types[i])),
            bytes((_FEATURE_GEOMETRY,)), _varint(len(geom)), geom,
        ))
        out.append(bytes((_LAYER_FEATURE,)) + _varint(len(body)) + body)
    return b"".join(out), b"".join(values)


def encode_point_layer(
    name: str, px: IntArray, py: IntArray, columns: Attributes, positions: IntArray, *,
    feature_ids: npt.NDArray[np.integer] | None = None, extent: int = DEFAULT_EXTENT,
) -> bytes:
    """Encode single points at integer tile coordinates ``px``, ``py`` (one per entry of ``positions``).

    Examples
    --------
    >>> column = AttributeColumn.from_values("kind", ["pole", "branch_box"])
    >>> tile = encode_point_layer("ap", np.array([1, 2]), np.array([3, 4]), [column], np.array([0, 1]))
    >>> tile[:1], len(tile)
    (b'\\x1a', 65)
    """
    n = positions.shape[0]
    commands = np.empty((n, 3), dtype=np.uint64)
    commands[:, 0] = _MOVE_TO_1
    commands[:, 1] = _zigzag_array(px)
    commands[:, 2] = _zigzag_array(py)
    return encode_layer(name, feature_ids=feature_ids, geom_types=np.full(n, 1, dtype=np.uint8),
                        geometry=(commands.reshape(-1), np.full(n, 3, dtype=np.int64)), columns=columns,
                        positions=positions, extent=extent)


def _ring_area2(ring: npt.NDArray[np.int64]) -> int:
    """Twice the signed area of a closed-by-implication ring (positive = clockwise on screen, y down)."""
    x, y = ring[:, 0], ring[:, 1]
    return int(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _dedupe(coords: npt.NDArray[np.int64], ring: bool) -> npt.NDArray[np.int64]:
    keep = np.ones(coords.shape[0], dtype=bool)
    keep[1:] = np.any(coords[1:] != coords[:-1], axis=1)
    coords = coords[keep]
    if ring and coords.shape[0] > 1 and np.array_equal(coords[0], coords[-1]):
        coords = coords[:-1]
    return coords


class _Cursor:
    """Builds the command integers of one feature; coordinates are deltas from the previous point."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.out: list[int] = []

    def path(self, coords: npt.NDArray[np.int64], close: bool) -> None:
        deltas = np.diff(np.vstack(([self.x, self.y], coords)), axis=0)
        zz = ((deltas << 1) ^ (deltas >> 63)).tolist()
        self.out += [_MOVE_TO_1, *zz[0], ((coords.shape[0] - 1) << 3) | 2]
        for dx, dy in zz[1:]:
            self.out += [dx, dy]
        if close:
            self.out.append(_CLOSE_PATH)
        self.x, self.y = (int(v) for v in coords[-1])

    def points(self, coords: npt.NDArray[np.int64]) -> None:
        deltas = np.diff(np.vstack(([self.x, self.y], coords)), axis=0)
        self.out += [(coords.shape[0] << 3) | 1, *((deltas << 1) ^ (deltas >> 63)).reshape(-1).tolist()]
        self.x, self.y = (int(v) for v in coords[-1])


def _parts(geometry: BaseGeometry, kind: GeometryKind) -> list[BaseGeometry]:
    wanted = {"linestring": ("LineString", "LinearRing"), "polygon": ("Polygon",), "point": ("Point",)}[kind]
    if geometry.is_empty:
        return []
    if geometry.geom_type in wanted:
        return [geometry]
    return [part for part in getattr(geometry, "geoms", ()) for part in _parts(part, kind)]


def geometry_commands(geometry_tile: BaseGeometry, kind: GeometryKind) -> list[int]:
    """Return the MVT command integers of a geometry in tile units (rounded here); empty when nothing is left.

    Parts that collapse when rounded (lines under 2 distinct points, rings under 3 or of zero area) are
    dropped; a polygon whose exterior collapses is dropped with its holes.

    Examples
    --------
    >>> from shapely import LineString
    >>> geometry_commands(LineString([(1, 1), (3, 1), (3, 4)]), "linestring")
    [9, 2, 2, 18, 4, 0, 0, 6]
    """
    cursor = _Cursor()
    for part in _parts(geometry_tile, kind):
        if kind == "linestring":
            coords = _dedupe(np.rint(shapely.get_coordinates(part)).astype(np.int64), ring=False)
            if coords.shape[0] >= 2:
                cursor.path(coords, close=False)
        elif kind == "polygon":
            rings = [part.exterior, *part.interiors]
            for number, ring in enumerate(rings):
                coords = _dedupe(np.rint(shapely.get_coordinates(ring)).astype(np.int64), ring=True)
                area2 = _ring_area2(coords) if coords.shape[0] >= 3 else 0
                if number == 0 and area2 <= 0:
                    break
                if number > 0 and area2 >= 0:
                    continue
                cursor.path(coords, close=True)
        else:
            cursor.points(np.rint(shapely.get_coordinates(part)).astype(np.int64))
    return cursor.out


def encode_line_or_polygon_layer(
    name: str, geometries_tile: Sequence[BaseGeometry] | npt.NDArray[np.object_], kind: GeometryKind,
    columns: Attributes, positions: IntArray, *,
    feature_ids: npt.NDArray[np.integer] | None = None, extent: int = DEFAULT_EXTENT,
) -> bytes:
    """Encode lines or polygons already clipped and mapped to tile units (see ``gis.tiles.tile_geometries``).

    Features whose geometry vanishes when rounded are left out.
    """
    commands: list[int] = []
    counts: list[int] = []
    kept: list[int] = []
    for index, geometry in enumerate(geometries_tile):
        if geometry is None:
            continue
        feature_commands = geometry_commands(geometry, kind)
        if feature_commands:
            commands += feature_commands
            counts.append(len(feature_commands))
            kept.append(index)
    keep = np.asarray(kept, dtype=np.int64)
    ids = None if feature_ids is None else np.asarray(feature_ids)[keep]
    return encode_layer(name, feature_ids=ids, geom_types=np.full(keep.shape[0], _GEOM_TYPE[kind], dtype=np.uint8),
                        geometry=(np.asarray(commands, dtype=np.uint64), np.asarray(counts, dtype=np.int64)),
                        columns=columns, positions=positions[keep], extent=extent)
