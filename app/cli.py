"""The ``sanling`` command line: a thin adapter over the same functions the API uses.

Every command but ``db upgrade`` works on a database that exists and is migrated to this code's schema, and checks
that first, reading without creating or changing anything: otherwise it exits 2 naming the database and saying
what to run (``sanling db upgrade``), never with a traceback and never leaving an empty database file behind
(issue 17 item 3). The settings resolve the data folder once, from the project folder (``app/settings.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gis.errors import SanlingError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.settings import Settings
    from gis.importing import Issue

#: What a command on a database that is missing or behind the code tells its user to run.
UPGRADE = "run `sanling db upgrade`"


class DatabaseNotReadyError(SanlingError):
    """The configured database cannot be used as it is; the message says what to do."""

    code = "DATABASE_NOT_READY"
    default_message = f"The database is not ready: {UPGRADE}."


class DatabaseMissingError(DatabaseNotReadyError):
    """The SQLite file of the settings does not exist (it is created by ``sanling db upgrade`` only)."""

    code = "DATABASE_MISSING"


class DatabaseNotMigratedError(DatabaseNotReadyError):
    """The database has no schema, or one of another revision than this code's."""

    code = "DATABASE_NOT_MIGRATED"


class DatabaseUnreachableError(DatabaseNotReadyError):
    """The database server cannot be reached, or the file is no SQLite database."""

    code = "DATABASE_UNREACHABLE"


class MigrationFailedError(SanlingError):
    """Alembic refused the migration or found the schema differing from the models (``db check``)."""

    code = "MIGRATION_FAILED"
    default_message = "The migration failed."


def _settings() -> Settings:
    from app.settings import get_settings

    return get_settings()


def _database_name(url: str) -> str:
    """The database as a user can find it: the SQLite file, or the URL without its password."""
    from sqlalchemy.engine import make_url

    sa_url = make_url(url)
    if sa_url.get_backend_name() == "sqlite":
        return str(sa_url.database or ":memory:")
    return sa_url.render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [orig.__class__.__name__])[0]


def schema_revisions(url: str) -> set[str]:
    """The Alembic revisions the database at ``url`` is at (empty: no schema), read without creating anything.

    A SQLite file is opened read-only (a missing one is :class:`DatabaseMissingError`, not a new empty file);
    PostgreSQL never creates a database on connect.
    """
    import sqlite3

    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    sa_url = make_url(url)
    name = _database_name(url)
    if sa_url.get_backend_name() == "sqlite":
        if not sa_url.database or sa_url.database == ":memory:":
            return set()
        path = Path(sa_url.database).resolve()
        if not path.is_file():
            raise DatabaseMissingError(f"There is no database at {path}: {UPGRADE} to create it.", database=str(path))
        try:
            conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            try:
                return {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return set()
            raise DatabaseUnreachableError(f"Cannot read the database {path}: {exc}.", database=str(path)) from None
        except sqlite3.DatabaseError as exc:
            raise DatabaseUnreachableError(f"{path} is not a SQLite database ({exc}).", database=str(path)) from None
    engine = create_engine(sa_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return set()
            return set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except SQLAlchemyError as exc:
        raise DatabaseUnreachableError(f"Cannot reach the database {name}: {_first_line(exc)}.",
                                       database=name) from None
    finally:
        engine.dispose()


def require_database(settings: Settings, *, migrated: bool = True) -> set[str]:
    """Raise unless the settings' database exists and (``migrated``) is at this code's schema; return its revisions.

    Without ``migrated`` a database with any schema passes (``db downgrade``).
    """
    from alembic.script import ScriptDirectory

    from app.platform import migrate

    url = settings.effective_database_url
    name = _database_name(url)
    revisions = schema_revisions(url)
    if not revisions:
        raise DatabaseNotMigratedError(f"The database {name} has no schema yet: {UPGRADE}.", database=name)
    if not migrated:
        return revisions
    script = ScriptDirectory.from_config(migrate.alembic_config(url))
    heads = set(script.get_heads())
    if revisions == heads:
        return revisions
    known = {revision.revision for revision in script.walk_revisions()}
    have, need = ", ".join(sorted(revisions)), ", ".join(sorted(heads))
    if revisions - known:
        raise DatabaseNotMigratedError(
            f"The database {name} is at revision {have}, which this Sanling does not know (a newer one migrated "
            f"it): run that version, or its `sanling db downgrade --revision {need}`.", database=name, revision=have)
    raise DatabaseNotMigratedError(f"The database {name} is at revision {have}, this Sanling needs {need}: {UPGRADE}.",
                                   database=name, revision=have, needed=need)


def cmd_db(args: argparse.Namespace) -> int:
    """Migrate the configured database, or check it (``db check`` first names the data folder and database)."""
    from alembic.util import AutogenerateDiffsDetected, CommandError

    from app.platform import migrate

    settings = _settings()
    url = settings.effective_database_url
    try:
        if args.action == "upgrade":
            migrate.upgrade(url, args.revision or "heads")
        elif args.action == "downgrade":
            require_database(settings, migrated=False)
            migrate.downgrade(url, args.revision or "-1")
        else:
            print(f"data dir: {settings.data_dir}")
            print(f"database: {_database_name(url)}")
            revisions = require_database(settings)
            print(f"schema: {', '.join(sorted(revisions))} (the newest)")
            migrate.check(url)
    except AutogenerateDiffsDetected as exc:
        raise MigrationFailedError(f"The schema differs from the models: {_first_line(exc)}") from None
    except CommandError as exc:
        raise MigrationFailedError(f"db {args.action}: {_first_line(exc)}") from None
    print(f"db {args.action}: done")
    return 0


def cmd_load_demo(args: argparse.Namespace) -> int:
    """Load (or refresh) the demo district in one transaction; with ``--with-users`` also the demo accounts."""
    from sqlalchemy.orm import Session

    from app.identity.users import ensure_demo_users
    from app.network.loading import REPO_ROOT, load_demo
    from app.platform.db import create_db_engine

    settings = _settings()
    if args.with_users and settings.env == "production":
        print("error DEMO_USERS_REFUSED: demo accounts are never created when SANLING_ENV=production",
              file=sys.stderr)
        return 2
    require_database(settings)
    engine = create_db_engine(settings.effective_database_url)
    with engine.begin() as conn:
        counts = load_demo(conn, service_area_wgs84=settings.service_area_wgs84)
        if args.with_users:
            password = os.environ.get("SANLING_DEMO_PASSWORD", "sanling-demo")
            with Session(bind=conn) as session:
                users = ensure_demo_users(session, users_file=REPO_ROOT / "fixtures" / "demo_users.toml",
                                          password=password, hash_profile=settings.password_hash_profile)
                session.flush()
                names = [f"{u.username} ({u.role})" for u in users]
    print("demo district loaded: " + ", ".join(f"{layer} {count}" for layer, count in counts.items()))
    if args.with_users:
        print(f"demo accounts (password {password!r}): " + ", ".join(names))
    return 0


def _print_issues(issues: Sequence[Issue], limit: int = 20) -> None:
    errors_first = sorted(issues, key=lambda issue: issue.severity != "error")
    for issue in errors_first[:limit]:
        print(f"  row {issue.row}" + (f" ({issue.key})" if issue.key else "") + f" {issue.field} {issue.code}: "
              f"{issue.message}", file=sys.stderr)


def cmd_import(args: argparse.Namespace) -> int:
    """Import one layer file: map, validate, upsert by key, all or nothing (docs/import.md)."""
    from tqdm import tqdm

    from app.network.loading import import_layer_file
    from app.platform.db import create_db_engine
    from gis.importing import FieldMapping, ImportProgress, ImportRejectedError, ImportReport

    settings = _settings()
    require_database(settings)
    mapping = FieldMapping.from_file(Path(args.mapping)) if args.mapping else FieldMapping()
    mapping = mapping.merged(FieldMapping.from_pairs(args.map or []))
    report_prefix = Path(args.report) if args.report else None
    bar = tqdm(unit=" rows", unit_scale=True, file=sys.stderr, disable=args.no_progress, desc=f"{args.layer}: reading",
               mininterval=0.5)

    def progress(state: ImportProgress) -> None:
        if state.rows_total is not None and bar.total != state.rows_total:
            bar.total = state.rows_total
        bar.update(state.rows_done - bar.n)
        if state.phase == "writing":
            bar.set_description(f"{args.layer}: writing")

    def save(report: ImportReport) -> None:
        if report_prefix is not None:
            report.write_json(report_prefix.with_suffix(".json"))
            print(f"report: {report_prefix.with_suffix('.json')} and {report_prefix.with_suffix('.csv')}",
                  file=sys.stderr)

    engine = create_db_engine(settings.effective_database_url)
    try:
        with engine.begin() as conn:
            report = import_layer_file(
                conn, args.layer, Path(args.file), source_crs=args.crs, replace=args.replace,
                skip_invalid=args.skip_invalid, dry_run=args.dry_run, mapping=mapping, encoding=args.encoding,
                source_layer=args.source_layer, service_area_wgs84=settings.service_area_wgs84,
                report_csv=report_prefix.with_suffix(".csv") if report_prefix else None, progress=progress)
    except ImportRejectedError as exc:
        bar.close()
        save(exc.report)
        print(f"error {exc.code}: {exc.message}", file=sys.stderr)
        print("issues: " + ", ".join(f"{code} {n}" for code, n in sorted(exc.report.issue_counts.items())),
              file=sys.stderr)
        _print_issues(exc.report.issues)
        return 2
    finally:
        engine.dispose()
    bar.close()
    save(report)
    verb = "would be imported (dry run)" if report.dry_run else "imported"
    print(f"{args.layer}: {report.rows_read} rows read, {report.rows_valid} {verb}: {report.inserted} inserted, "
          f"{report.updated} updated, {report.unchanged} unchanged, {report.deleted} deleted "
          f"[{report.strategy}] in {report.duration_s:.1f} s ({report.rows_per_s:,.0f} rows/s)")
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if report.issue_counts:
        print("issues: " + ", ".join(f"{code} {n}" for code, n in sorted(report.issue_counts.items())),
              file=sys.stderr)
        _print_issues(report.issues, limit=5)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the API with uvicorn."""
    import uvicorn

    from app.serving import check_port_free, reuseport_supported, serve_workers, uvicorn_proxy_options

    # The service runs the periodic jobs (docs/lifecycle-infra.md) and loads the network before taking
    # connections unless told otherwise; set before the settings are first read, and inherited by the workers.
    os.environ.setdefault("SANLING_JOBS_ENABLED", "true")
    os.environ.setdefault("SANLING_PRELOAD_NETWORK", "true")
    os.environ.setdefault("SANLING_REQUEST_CONCURRENCY", "1")  # one request computes at a time per worker
    settings = _settings()
    host = args.host or settings.host
    port = args.port or settings.port
    workers = args.workers or settings.workers
    check_port_free(host, port)
    require_database(settings)  # the workers would otherwise create an empty SQLite file and fail each request
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = settings.data_dir.resolve() / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    print(f"Sanling API on http://{host}:{port}  (docs: http://{host}:{port}/docs)", flush=True)
    if workers > 1 and reuseport_supported():
        from app.platform.observability import configure_logging

        configure_logging(settings.log_level, json_logs=settings.log_json)  # the supervisor's own log lines
        # one SO_REUSEPORT socket per worker (app/serving.py)
        return serve_workers(host, port, workers, trusted_proxies=settings.trusted_proxies)
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers,
                log_config=None, access_log=False, **uvicorn_proxy_options(settings.trusted_proxies))
    return 0


@contextlib.contextmanager
def _session() -> Iterator[Session]:
    from app.platform.db import create_db_engine, make_session_factory

    settings = _settings()
    require_database(settings)
    engine = create_db_engine(settings.effective_database_url)
    try:
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _read_password(args: argparse.Namespace) -> str:
    from gis.errors import InvalidInputError

    if args.password_env:
        if args.password_env not in os.environ:
            raise InvalidInputError(f"environment variable {args.password_env} is not set", field="password")
        return os.environ[args.password_env]
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise InvalidInputError("the passwords differ", field="password")
        return password
    raise InvalidInputError("give the password with --password-stdin or --password-env VAR", field="password")


def cmd_user(args: argparse.Namespace) -> int:
    """Create or list users (docs/auth.md)."""
    from pydantic import ValidationError

    from app.identity import users
    from app.platform.audit import record_change, snapshot

    with _session() as session:
        if args.action == "list":
            for user in users.list_users(session):
                print("\t".join([str(user.id), user.username, user.role, "active" if user.is_active else "inactive",
                                 ",".join(user.grid_area_codes or []) or "-", user.full_name or "-"]))
            return 0
        try:
            data = users.UserCreate(username=args.username, password=_read_password(args), role=args.role,
                                    full_name=args.full_name, grid_area_codes=args.grid_area or [],
                                    phone=args.phone)
        except ValidationError as exc:
            raise users.invalid_input(exc) from None
        user = users.create_user(session, data=data, hash_profile=_settings().password_hash_profile)
        record_change(session, actor_user_id=None, actor_role=None, entity="user", entity_id=str(user.id),
                      action="created", before=None, after={**snapshot(user), "via": "cli"})
        session.commit()
        print(f"user {user.id} created: {user.username} ({user.role})")
    return 0


def cmd_apikey(args: argparse.Namespace) -> int:
    """Create, list or revoke API keys; a new key is printed once, alone on stdout."""
    from pydantic import ValidationError

    from app.identity import users
    from app.platform.audit import record_change, snapshot
    from app.platform.models import ApiKey

    with _session() as session:
        if args.action == "create":
            try:
                data = users.ApiKeyCreate(name=args.name, expires_days=args.expires_days)
            except ValidationError as exc:
                raise users.invalid_input(exc) from None
            owner = users.get_user(session, username=args.username)
            row, key = users.create_api_key(session, user=owner, name=data.name, expires_days=data.expires_days,
                                            hash_profile=_settings().password_hash_profile)
            record_change(session, actor_user_id=None, actor_role=None, entity="api_key", entity_id=str(row.id),
                          action="created", before=None, after={**snapshot(row), "via": "cli"})
            session.commit()
            expiry = f"expires {row.expires_at:%Y-%m-%d}" if row.expires_at else "no expiry"
            print(f"API key {row.id} ({row.prefix}) for {owner.username}, {expiry}; it is not shown again:",
                  file=sys.stderr)
            print(key)
        elif args.action == "list":
            owner_id = users.get_user(session, username=args.username).id if args.username else None
            for row in users.list_api_keys(session, user_id=owner_id):
                state = "revoked" if row.revoked_at else "active"
                print("\t".join([str(row.id), str(row.user_id), row.prefix, row.name, state,
                                 f"{row.expires_at:%Y-%m-%d}" if row.expires_at else "-"]))
        else:
            existing = session.get(ApiKey, args.id)
            was_revoked = existing is not None and existing.revoked_at is not None
            row = users.revoke_api_key(session, key_id=args.id)
            if not was_revoked:
                record_change(session, actor_user_id=None, actor_role=None, entity="api_key", entity_id=str(row.id),
                              action="revoked", before={"revoked_at": None},
                              after={"revoked_at": row.revoked_at, "via": "cli"})
            session.commit()
            print(f"API key {row.id} ({row.prefix}) revoked")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    """List the periodic jobs with their lease state, or run one now (without waiting for its lease)."""
    from datetime import datetime

    from app.platform.audit import as_utc
    from app.platform.db import create_db_engine, make_session_factory
    from app.platform.jobs import lease_states, run_job
    from app.wiring import service_jobs
    from gis.errors import InvalidInputError

    settings = _settings()
    registry = service_jobs()
    require_database(settings)
    engine = create_db_engine(settings.effective_database_url)
    factory = make_session_factory(engine)
    try:
        if args.action == "list":
            with factory() as session:
                leases = lease_states(session)

            def show(moment: datetime | None) -> str:
                return as_utc(moment).isoformat(timespec="seconds") if moment else "-"

            for job in registry:
                lease = leases.get(job.name)
                print("\t".join([job.name, f"every {job.interval_for(settings):g} s",
                                 f"next {show(lease.expires_at) if lease else 'now'}",
                                 f"last {show(lease.last_finished_at) if lease else '-'}",
                                 (lease.last_error or "ok") if lease and lease.last_finished_at else "-"]))
            return 0
        if args.name not in registry.jobs:
            raise InvalidInputError(f"no job {args.name!r}; known: {', '.join(sorted(registry.jobs))}", field="name")
        result = run_job(registry.get(args.name), factory, settings)
        print(json.dumps(result, ensure_ascii=False, default=str) if result is not None else "done")
    finally:
        engine.dispose()
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
    demo.add_argument("--with-users", action="store_true",
                      help="also create the demo accounts of fixtures/demo_users.toml (password: "
                           "SANLING_DEMO_PASSWORD, default sanling-demo; refused in production)")
    demo.set_defaults(func=cmd_load_demo)

    imp = sub.add_parser("import", help="import a GIS layer file (docs/import.md)")
    imp.add_argument("layer", help="grid_areas, roads, no_overhead_zones, transformers, lv_lines, access_points, "
                                   "load_readings")
    imp.add_argument("file", help="GeoPackage, zipped Shapefile, GeoJSON or CSV")
    imp.add_argument("--map", action="append", metavar="SRC=DST",
                     help="take field DST from source column SRC; SRC[UNIT]=DST converts (e.g. sn_mva[MVA]=rated_kva); "
                          "DST x/y names CSV coordinate columns")
    imp.add_argument("--mapping", metavar="FILE", help="mapping file (.toml, .yaml, .json); --map pairs override it")
    imp.add_argument("--crs", help="CRS of the coordinates when the file declares none or a wrong one, e.g. EPSG:4545")
    imp.add_argument("--encoding", help="attribute encoding when the file declares none, e.g. GBK")
    imp.add_argument("--source-layer", help="layer inside a GeoPackage or zip with several layers")
    imp.add_argument("--dry-run", action="store_true", help="validate and count, change nothing")
    imp.add_argument("--skip-invalid", action="store_true", help="import the valid rows, report the others")
    imp.add_argument("--replace", action="store_true", help="delete rows whose id is not in the file")
    imp.add_argument("--report", metavar="PREFIX", help="write the row report to PREFIX.json and PREFIX.csv")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    imp.set_defaults(func=cmd_import)

    user = sub.add_parser("user", help="create or list users (docs/auth.md)")
    user_sub = user.add_subparsers(dest="action", required=True)
    user_create = user_sub.add_parser("create", help="create a user")
    user_create.add_argument("username")
    user_create.add_argument("--role", required=True,
                             help="customer, customer_manager, project_manager, planner, gis_admin or admin")
    password = user_create.add_mutually_exclusive_group()
    password.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
    password.add_argument("--password-env", metavar="VAR", help="read the password from environment variable VAR")
    user_create.add_argument("--grid-area", action="extend", nargs="+", metavar="CODE",
                             help="grid area code(s) of a customer manager or project manager")
    user_create.add_argument("--full-name")
    user_create.add_argument("--phone")
    user_sub.add_parser("list", help="list users: id, username, role, state, grid areas, full name")
    user.set_defaults(func=cmd_user)

    apikey = sub.add_parser("apikey", help="create, list or revoke API keys for terminals")
    apikey_sub = apikey.add_subparsers(dest="action", required=True)
    apikey_create = apikey_sub.add_parser("create", help="create a key and print it once")
    apikey_create.add_argument("username")
    apikey_create.add_argument("--name", required=True, help="what the key is for, e.g. the terminal")
    apikey_create.add_argument("--expires-days", type=int, help="days until the key expires (default: never)")
    apikey_list = apikey_sub.add_parser("list", help="list keys: id, user id, prefix, name, state, expiry")
    apikey_list.add_argument("username", nargs="?")
    apikey_revoke = apikey_sub.add_parser("revoke", help="revoke a key at once")
    apikey_revoke.add_argument("id", type=int)
    apikey.set_defaults(func=cmd_apikey)

    jobs = sub.add_parser("jobs", help="list the periodic jobs or run one now")
    jobs_sub = jobs.add_subparsers(dest="action", required=True)
    jobs_sub.add_parser("list", help="list jobs: name, interval, next due, last finished, last error")
    jobs_run = jobs_sub.add_parser("run", help="run a job now in this process")
    jobs_run.add_argument("name")
    jobs.set_defaults(func=cmd_jobs)

    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sanling`` console script."""
    from sqlalchemy.exc import SQLAlchemyError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SanlingError as exc:
        print(f"error {exc.code}: {exc.message}"
              + (f" {json.dumps(exc.details, ensure_ascii=False, default=str)}" if exc.details else ""),
              file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:  # checked above, but the database may change under the command
        print(f"error DATABASE_ERROR: {_first_line(exc)} (`sanling db check` names the database and its schema)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
