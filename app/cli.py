"""The ``sanling`` command line: a thin adapter over the same functions the API uses."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from gis.errors import SanlingError


def _settings():  # type: ignore[no-untyped-def]
    from app.settings import get_settings

    return get_settings()


def cmd_db(args: argparse.Namespace) -> int:
    """Migrate the configured database."""
    from app import migrate

    url = _settings().effective_database_url
    if args.action == "upgrade":
        migrate.upgrade(url, args.revision or "heads")
    elif args.action == "downgrade":
        migrate.downgrade(url, args.revision or "-1")
    else:
        migrate.check(url)
    print(f"db {args.action}: done")
    return 0


def cmd_load_demo(_args: argparse.Namespace) -> int:
    """Load (or refresh) the demo district in one transaction."""
    from app.db import create_db_engine
    from app.loader import load_demo

    engine = create_db_engine(_settings().effective_database_url)
    with engine.begin() as conn:
        counts = load_demo(conn)
    print("demo district loaded: " + ", ".join(f"{layer} {count}" for layer, count in counts.items()))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import one layer file (upsert by asset id, all or nothing)."""
    from app.db import create_db_engine
    from app.loader import import_layer_file

    engine = create_db_engine(_settings().effective_database_url)
    with engine.begin() as conn:
        count = import_layer_file(conn, args.layer, Path(args.file), source_crs=args.crs, replace=args.replace)
    print(f"{args.layer}: {count} rows imported from {args.file}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the API with uvicorn."""
    import uvicorn

    settings = _settings()
    host = args.host or settings.host
    port = args.port or settings.port
    workers = args.workers or settings.workers
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = settings.data_dir.resolve() / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    print(f"Sanling API on http://{host}:{port}  (docs: http://{host}:{port}/docs)", flush=True)
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers,
                log_config=None, access_log=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``sanling`` command."""
    parser = argparse.ArgumentParser(prog="sanling", description="Sanling 三零 grid-connection design service")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database schema migrations (Alembic)")
    db.add_argument("action", choices=["upgrade", "downgrade", "check"])
    db.add_argument("--revision", help="target revision (upgrade: heads, downgrade: -1)")
    db.set_defaults(func=cmd_db)

    demo = sub.add_parser("load-demo", help="load the demo district from fixtures/demo")
    demo.set_defaults(func=cmd_load_demo)

    imp = sub.add_parser("import", help="import a GIS layer file")
    imp.add_argument("layer", help="grid_areas, transformers, lv_lines, access_points, roads, no_overhead_zones")
    imp.add_argument("file", help="GeoPackage, zipped Shapefile, GeoJSON or CSV")
    imp.add_argument("--crs", help="source CRS when the file declares none, e.g. EPSG:4545")
    imp.add_argument("--replace", action="store_true", help="delete rows whose id is not in the file")
    imp.set_defaults(func=cmd_import)

    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sanling`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SanlingError as exc:
        print(f"error {exc.code}: {exc.message}"
              + (f" {json.dumps(exc.details, ensure_ascii=False, default=str)}" if exc.details else ""),
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
