"""The tile cache of one worker: encoded vector tiles of the current asset generation, made with the app."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Annotated

from fastapi import Depends, Request

#: Tiles kept per worker (least recently used dropped first).
TILE_CACHE_ENTRIES = 4096


class TileCache:
    """Encoded tiles of one asset generation (least recently used dropped first); a new generation empties it."""

    def __init__(self, max_entries: int = TILE_CACHE_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._tiles: OrderedDict[tuple[str, int, int, int], bytes] = OrderedDict()
        self._max_entries = max_entries

    def get(self, generation: int, key: tuple[str, int, int, int]) -> bytes | None:
        """Return the cached tile, or None."""
        with self._lock:
            if generation != self._generation:
                return None
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
            return tile

    def put(self, generation: int, key: tuple[str, int, int, int], tile: bytes) -> None:
        """Store a tile encoded at ``generation``."""
        with self._lock:
            if generation != self._generation:
                self._tiles.clear()
                self._generation = generation
            self._tiles[key] = tile
            while len(self._tiles) > self._max_entries:
                self._tiles.popitem(last=False)


def get_tile_cache(request: Request) -> TileCache:
    """The app's tile cache (one per worker process, made by ``create_app``)."""
    cache: TileCache = request.app.state.tile_cache
    return cache


TileCacheDep = Annotated[TileCache, Depends(get_tile_cache)]
