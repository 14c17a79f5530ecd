"""A throwaway PostgreSQL cluster with a stand-in `timescaledb` extension.

TimescaleDB cannot be installed here, so the tests build what a server with it looks like: the
PostgreSQL build (the pgserver wheel's PostgreSQL 16, or the machine's own) is mirrored into a temporary
directory with hard links (the real install is never written to), and `timescaledb.control` plus an
install script written in SQL are added to the mirror. The copied `postgres` binary finds its extensions
relative to itself, so only the throwaway cluster sees them.

The stand-in behaves as TimescaleDB 2.x does where Depthcharge depends on it:

* Not preloaded, `CREATE EXTENSION timescaledb` ends the session, as the real library's FATAL
  `extension "timescaledb" must be preloaded` does (the real one raises it while loading its C library;
  SQL cannot raise FATAL, so the stand-in warns with the same message and terminates its own backend).
  The setting `timescaledb_stub.fatal` (say, per database) makes it do so even when preloaded.
* Preloaded (`shared_preload_libraries = 'timescaledb'`; any PostgreSQL module copied under that name
  stands in for the library, only its name matters), it installs the public API Depthcharge calls, with
  the signatures of TimescaleDB 2.17 (`by_range` and the generalised `create_hypertable` only from 2.13
  on), validated the way TimescaleDB validates them, and the catalog views a test reads:
  `timescaledb_information.hypertables`, `.dimensions`, `.compression_settings` and `.jobs`.
* A hypertable keeps its rows in chunk tables that inherit from it, one per chunk interval, as real
  hypertables do: the parent stays small (what `pg_total_relation_size` of it sees) while
  `hypertable_size()` adds up the chunks. `compress_chunk()` records the chunk's size before and the size
  of a compressed copy (its rows as text, compressed by TOAST) after, for `hypertable_compression_stats()`.
* `ALTER TABLE … SET (timescaledb.…)` is handled by TimescaleDB's utility hook, which SQL cannot add;
  `timescale_utility_hook()` plays that part for SQLAlchemy connections (the migrations').
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from infra.db.connection import Database

STUB_VERSION = "2.17.2"
OLD_API_VERSION = "2.12.0"  # before by_range() and the generalised create_hypertable()
PRELOAD_ERROR = 'extension "timescaledb" must be preloaded'


@dataclass(frozen=True)
class PgInstall:
    """Where a PostgreSQL build keeps its programs, shared files and modules."""

    bindir: Path
    sharedir: Path
    pkglibdir: Path

    @classmethod
    def from_pg_config(cls, pg_config: Path) -> PgInstall:
        out = subprocess.run(
            [str(pg_config), "--bindir", "--sharedir", "--pkglibdir"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        return cls(*(Path(p).resolve() for p in out))

    @property
    def version(self) -> str:
        out = subprocess.run(
            [str(self.bindir / "postgres"), "--version"], check=True, capture_output=True, text=True
        ).stdout
        return out.split("(PostgreSQL)")[-1].split()[0]


def _import_pgserver() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset (see infra.db.embedded)
        import pgserver
        import pgserver.utils
    return pgserver


def pgserver_install() -> PgInstall:
    """The PostgreSQL 16 of the pgserver wheel (the embedded server's)."""
    pgserver = _import_pgserver()
    return PgInstall.from_pg_config(Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_config")


def system_install() -> PgInstall | None:
    """This machine's own PostgreSQL server, if it has one (Debian keeps it in /usr/lib/postgresql)."""
    for pg_config in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_config"), reverse=True):
        if (pg_config.parent / "postgres").exists() and (pg_config.parent / "initdb").exists():
            return PgInstall.from_pg_config(pg_config)
    return None


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or hard links to others' files not allowed
        shutil.copy2(src, dst)


def stage_install(source: PgInstall, dest: Path) -> PgInstall:
    """Mirror `source`'s server binary, shared files and modules under `dest`, keeping their relative
    layout (PostgreSQL finds them relative to its binary), and add the stand-in timescaledb."""
    common = Path(os.path.commonpath([source.bindir, source.sharedir, source.pkglibdir]))
    staged = PgInstall(
        *(dest / p.relative_to(common) for p in (source.bindir, source.sharedir, source.pkglibdir))
    )
    shutil.copytree(source.sharedir, staged.sharedir, copy_function=_link_or_copy)
    shutil.copytree(source.pkglibdir, staged.pkglibdir, copy_function=_link_or_copy)
    staged.bindir.mkdir(parents=True)
    _link_or_copy(str(source.bindir / "postgres"), str(staged.bindir / "postgres"))
    # The library only has to load at server start; pgoutput has a module magic block and no _PG_init.
    shutil.copy2(source.pkglibdir / "pgoutput.so", staged.pkglibdir / "timescaledb.so")
    ext = staged.sharedir / "extension"
    (ext / "timescaledb.control").write_text(
        "comment = 'Depthcharge test stand-in for TimescaleDB'\n"
        f"default_version = '{STUB_VERSION}'\n"
        "relocatable = false\n"
        "superuser = true\n"
        "trusted = true\n"  # as TimescaleDB's: a role with CREATE on the database may create it
    )
    for version in (STUB_VERSION, OLD_API_VERSION):
        (ext / f"timescaledb--{version}.sql").write_text(stub_script(version))
    return staged


def _server_user() -> str | None:
    """PostgreSQL refuses to run as root; there, run it as pgserver's user (the embedded server's)."""
    if os.geteuid() != 0:
        return None
    _import_pgserver().utils.ensure_user_exists("pgserver")
    return "pgserver"


class StubCluster:
    """A PostgreSQL cluster run from a staged install, reachable only on a Unix socket."""

    def __init__(self, source: PgInstall, staged: PgInstall, *, preload: bool) -> None:
        self.source, self.staged, self.preload = source, staged, preload
        self.root = Path(tempfile.mkdtemp(prefix="dc-tsdb-"))  # short: the socket path has a 107-byte limit
        self.root.chmod(0o755)
        self.pgdata = self.root / "data"
        self.user = _server_user()

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, text=True, user=self.user, timeout=120)

    def start(self) -> Database:
        self.pgdata.mkdir(mode=0o700)
        if self.user is not None:
            shutil.chown(self.pgdata, self.user, self.user)
            shutil.chown(self.root, self.user, self.user)
        # initdb of the original install: it runs its own postgres and reads its own share/ (no extensions
        # needed there); the cluster is then served by the staged binary, which sees the stand-in.
        self._run(
            str(self.source.bindir / "initdb"),
            "-D",
            str(self.pgdata),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        conf = [
            "listen_addresses = ''",
            f"unix_socket_directories = '{self.root}'",
            "port = 5432",
            "fsync = off",
            "shared_buffers = 16MB",
            "max_connections = 40",
        ]
        if self.preload:
            conf.append("shared_preload_libraries = 'timescaledb'")
        with (self.pgdata / "postgresql.conf").open("a") as f:
            f.write("\n".join(conf) + "\n")
        self._run(
            str(self.source.bindir / "pg_ctl"),
            "start",
            "-w",
            "-D",
            str(self.pgdata),
            "-p",
            str(self.staged.bindir / "postgres"),
            "-l",
            str(self.root / "server.log"),
        )
        return Database(f"host={self.root} port=5432 user=postgres dbname=postgres", "timescaledb-stub")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run(str(self.source.bindir / "pg_ctl"), "stop", "-D", str(self.pgdata), "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)


# --- the utility hook --------------------------------------------------------------------------------

_ALTER_SET = re.compile(r"^\s*ALTER\s+TABLE\s+(\S+)\s+SET\s*\((\s*timescaledb\..*)\)\s*;?\s*$", re.I | re.S)
_OPTION = re.compile(r"\s*([\w.]+)\s*(?:=\s*'((?:[^']|'')*)')?\s*(?:,|$)")


def _options(text: str) -> dict[str, str]:
    return {key: (value or "true").replace("''", "'") for key, value in _OPTION.findall(text) if key}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@contextlib.contextmanager
def timescale_utility_hook() -> Iterator[list[str]]:
    """While open, `ALTER TABLE t SET (timescaledb.…)` sent through SQLAlchemy goes to the stand-in's
    `stub_alter_table_set(t, options)`; yields the statements it took over."""
    taken: list[str] = []

    def rewrite(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> tuple[str, Any]:
        match = _ALTER_SET.match(statement)
        if match is None:
            return statement, parameters
        taken.append(" ".join(statement.split()))
        import json

        options = json.dumps(_options(match.group(2)))
        return (
            f"SELECT _timescaledb_catalog.stub_alter_table_set({_quote(match.group(1))}, {_quote(options)})",
            parameters,
        )

    event.listen(Engine, "before_cursor_execute", rewrite, retval=True)
    try:
        yield taken
    finally:
        event.remove(Engine, "before_cursor_execute", rewrite)


# --- the install script ------------------------------------------------------------------------------


def stub_script(version: str) -> str:
    """The stand-in's install script for `version` (2.13 and later have the generalised API)."""
    major, minor = (int(p) for p in version.split(".")[:2])
    new_api = (major, minor) >= (2, 13)
    return (
        _PRELOAD_CHECK
        + _CATALOG
        + _OLD_CREATE_HYPERTABLE
        + (_NEW_CREATE_HYPERTABLE if new_api else "")
        + _API
    )


_PRELOAD_CHECK = r"""
-- TimescaleDB's library refuses to load unless preloaded, with a FATAL that ends the session. It has
-- other FATALs (another version of it already loaded, say): `timescaledb_stub.fatal` stands for those.
DO $preload$
DECLARE
    fatal text := coalesce(current_setting('timescaledb_stub.fatal', true), '');
BEGIN
    IF NOT 'timescaledb' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')) THEN
        fatal := 'extension "timescaledb" must be preloaded';
    END IF;
    IF fatal <> '' THEN
        RAISE WARNING '%', fatal
            USING HINT = 'Please preload the timescaledb library via shared_preload_libraries.';
        PERFORM pg_terminate_backend(pg_backend_pid());
        PERFORM pg_sleep(30);
    END IF;
END
$preload$;
"""

_CATALOG = r"""
CREATE SCHEMA _timescaledb_catalog;
CREATE SCHEMA _timescaledb_internal;
CREATE SCHEMA timescaledb_information;
GRANT USAGE ON SCHEMA _timescaledb_catalog, _timescaledb_internal, timescaledb_information TO PUBLIC;

-- Every API call, for tests that check how the API was called.
CREATE TABLE _timescaledb_catalog.stub_calls (
    id        bigserial PRIMARY KEY,
    function  text NOT NULL,
    args      jsonb NOT NULL
);
CREATE TABLE _timescaledb_catalog.stub_warnings (id bigserial PRIMARY KEY, message text NOT NULL);

CREATE TABLE _timescaledb_catalog.hypertable (
    id              serial PRIMARY KEY,
    schema_name     name NOT NULL,
    table_name      name NOT NULL,
    time_column     name NOT NULL,
    chunk_interval  interval NOT NULL,
    segmentby       text[],
    orderby         text[],   -- 'col DESC' / 'col'
    compressed      boolean NOT NULL DEFAULT false,
    UNIQUE (schema_name, table_name)
);
CREATE TABLE _timescaledb_catalog.chunk (
    id              serial PRIMARY KEY,
    hypertable_id   integer NOT NULL REFERENCES _timescaledb_catalog.hypertable ON DELETE CASCADE,
    table_name      name NOT NULL,
    range_start     timestamptz NOT NULL,
    range_end       timestamptz NOT NULL,
    compressed_table name,
    before_compression_total_bytes bigint,
    after_compression_total_bytes  bigint,
    UNIQUE (hypertable_id, range_start)
);
CREATE TABLE _timescaledb_catalog.job (
    id              serial PRIMARY KEY,
    proc_name       text NOT NULL,
    hypertable_id   integer NOT NULL REFERENCES _timescaledb_catalog.hypertable ON DELETE CASCADE,
    config          jsonb NOT NULL,
    UNIQUE (proc_name, hypertable_id)
);

CREATE FUNCTION _timescaledb_catalog.stub_record(fn text, args jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO _timescaledb_catalog.stub_calls (function, args) VALUES (fn, args) $$;

CREATE FUNCTION _timescaledb_catalog.stub_hypertable(rel regclass, what text DEFAULT 'hypertable')
RETURNS _timescaledb_catalog.hypertable LANGUAGE plpgsql AS $$
DECLARE
    h _timescaledb_catalog.hypertable;
BEGIN
    SELECT ht.* INTO h FROM _timescaledb_catalog.hypertable ht
     JOIN pg_class c ON c.relname = ht.table_name
     JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = ht.schema_name
     WHERE c.oid = rel;
    IF h.id IS NULL THEN
        RAISE EXCEPTION 'table "%" is not a hypertable', rel::text USING ERRCODE = 'TS102';
    END IF;
    RETURN h;
END
$$;

CREATE VIEW timescaledb_information.hypertables AS
SELECT h.schema_name AS hypertable_schema, h.table_name AS hypertable_name,
       pg_get_userbyid(c.relowner) AS owner, 1 AS num_dimensions,
       (SELECT count(*) FROM _timescaledb_catalog.chunk ch WHERE ch.hypertable_id = h.id) AS num_chunks,
       h.compressed AS compression_enabled
  FROM _timescaledb_catalog.hypertable h
  JOIN pg_namespace n ON n.nspname = h.schema_name
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = h.table_name;

CREATE VIEW timescaledb_information.dimensions AS
SELECT h.schema_name AS hypertable_schema, h.table_name AS hypertable_name, 1 AS dimension_number,
       h.time_column AS column_name, 'Time'::text AS dimension_type, h.chunk_interval AS time_interval
  FROM _timescaledb_catalog.hypertable h;

CREATE VIEW timescaledb_information.compression_settings AS
SELECT h.schema_name AS hypertable_schema, h.table_name AS hypertable_name, s.col AS attname,
       s.segmentby_column_index, s.orderby_column_index, s.orderby_asc
  FROM _timescaledb_catalog.hypertable h,
  LATERAL (
      SELECT seg AS col, i::smallint AS segmentby_column_index, NULL::smallint AS orderby_column_index,
             NULL::boolean AS orderby_asc
        FROM unnest(h.segmentby) WITH ORDINALITY AS u(seg, i)
      UNION ALL
      SELECT split_part(o, ' ', 1), NULL, i::smallint, NOT (o ILIKE '% DESC')
        FROM unnest(h.orderby) WITH ORDINALITY AS u(o, i)
  ) s
 WHERE h.compressed;

CREATE VIEW timescaledb_information.jobs AS
SELECT j.id AS job_id, j.proc_name, h.schema_name AS hypertable_schema, h.table_name AS hypertable_name,
       j.config
  FROM _timescaledb_catalog.job j JOIN _timescaledb_catalog.hypertable h ON h.id = j.hypertable_id;

GRANT SELECT ON ALL TABLES IN SCHEMA timescaledb_information TO PUBLIC;
-- TimescaleDB's catalog is written by its SECURITY DEFINER code; the stand-in's by whoever calls it.
GRANT ALL ON ALL TABLES IN SCHEMA _timescaledb_catalog TO PUBLIC;
GRANT ALL ON ALL SEQUENCES IN SCHEMA _timescaledb_catalog TO PUBLIC;
GRANT CREATE ON SCHEMA _timescaledb_internal TO PUBLIC;

-- Rows go to the chunk of their time range, made on demand; the parent keeps none.
CREATE FUNCTION _timescaledb_catalog.route_to_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    h _timescaledb_catalog.hypertable := _timescaledb_catalog.stub_hypertable(TG_RELID);
    t timestamptz;
    step double precision := extract(epoch FROM h.chunk_interval);
    start_ts timestamptz;
    ch _timescaledb_catalog.chunk;
    chunk_name name;
BEGIN
    EXECUTE format('SELECT ($1).%I::timestamptz', h.time_column) INTO t USING NEW;
    start_ts := to_timestamp(floor(extract(epoch FROM t) / step) * step);
    SELECT * INTO ch FROM _timescaledb_catalog.chunk WHERE hypertable_id = h.id AND range_start = start_ts;
    IF ch.id IS NULL THEN
        INSERT INTO _timescaledb_catalog.chunk (hypertable_id, table_name, range_start, range_end)
        VALUES (h.id, 'pending', start_ts, start_ts + h.chunk_interval) RETURNING * INTO ch;
        chunk_name := format('_hyper_%s_%s_chunk', h.id, ch.id);
        UPDATE _timescaledb_catalog.chunk SET table_name = chunk_name WHERE id = ch.id;
        EXECUTE format('CREATE TABLE _timescaledb_internal.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)',
                       chunk_name, h.schema_name, h.table_name);
        EXECUTE format('ALTER TABLE _timescaledb_internal.%I ADD CONSTRAINT %I CHECK (%I >= %L AND %I < %L)',
                       chunk_name, 'constraint_' || ch.id, h.time_column, start_ts, h.time_column,
                       start_ts + h.chunk_interval);
        EXECUTE format('ALTER TABLE _timescaledb_internal.%I INHERIT %I.%I', chunk_name, h.schema_name, h.table_name);
        ch.table_name := chunk_name;
    END IF;
    EXECUTE format('INSERT INTO _timescaledb_internal.%I SELECT ($1).* ON CONFLICT DO NOTHING', ch.table_name) USING NEW;
    RETURN NULL;
END
$$;

-- TimescaleDB drops a hypertable's chunks with it (DROP TABLE would refuse: the chunks inherit from it).
CREATE FUNCTION _timescaledb_catalog.drop_hypertable_chunks() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
    ch record;
BEGIN
    IF tg_tag <> 'DROP TABLE' THEN
        RETURN;
    END IF;
    FOR ch IN
        SELECT c.table_name, c.compressed_table, h.id AS hypertable_id
          FROM _timescaledb_catalog.chunk c JOIN _timescaledb_catalog.hypertable h ON h.id = c.hypertable_id
         WHERE current_query() ~* ('\m' || h.table_name || '\M')
    LOOP
        EXECUTE format('DROP TABLE IF EXISTS _timescaledb_internal.%I', ch.table_name);
        IF ch.compressed_table IS NOT NULL THEN
            EXECUTE format('DROP TABLE IF EXISTS _timescaledb_internal.%I', ch.compressed_table);
        END IF;
    END LOOP;
    DELETE FROM _timescaledb_catalog.hypertable h WHERE current_query() ~* ('\m' || h.table_name || '\M');
END
$$;
CREATE EVENT TRIGGER timescaledb_stub_drop ON ddl_command_start WHEN TAG IN ('DROP TABLE')
    EXECUTE FUNCTION _timescaledb_catalog.drop_hypertable_chunks();

CREATE FUNCTION _timescaledb_catalog.make_hypertable(
    relation regclass, time_column name, chunk_interval anyelement, create_default_indexes boolean,
    if_not_exists boolean, migrate_data boolean
) RETURNS TABLE(hypertable_id int, created bool) LANGUAGE plpgsql AS $$
DECLARE
    existing int;
    col_type regtype;
    iv interval;
    idx record;
    nsp name;
    rel name;
    has_rows boolean;
BEGIN
    SELECT n.nspname, c.relname INTO nsp, rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = relation;
    SELECT id INTO existing FROM _timescaledb_catalog.hypertable WHERE schema_name = nsp AND table_name = rel;
    IF existing IS NOT NULL THEN
        IF if_not_exists THEN
            RAISE NOTICE 'table "%" is already a hypertable, skipping', rel;
            RETURN QUERY SELECT existing, false;
            RETURN;
        END IF;
        RAISE EXCEPTION 'table "%" is already a hypertable', rel USING ERRCODE = 'TS110';
    END IF;
    SELECT atttypid::regtype INTO col_type FROM pg_attribute
     WHERE attrelid = relation AND attname = time_column AND attnum > 0 AND NOT attisdropped;
    IF col_type IS NULL THEN
        RAISE EXCEPTION 'column "%" does not exist', time_column USING ERRCODE = 'undefined_column';
    END IF;
    IF col_type NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
        RAISE EXCEPTION 'invalid type for dimension "%"', time_column USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF chunk_interval IS NULL THEN
        iv := interval '7 days';
    ELSIF pg_typeof(chunk_interval) = 'interval'::regtype THEN
        iv := chunk_interval::text::interval;
    ELSIF pg_typeof(chunk_interval) IN ('bigint'::regtype, 'integer'::regtype, 'smallint'::regtype) THEN
        iv := (chunk_interval::text || ' microseconds')::interval;
    ELSE
        RAISE EXCEPTION 'invalid interval type for % dimension', col_type USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Unique indexes must contain the partitioning column.
    FOR idx IN SELECT i.indexrelid::regclass AS name, i.indkey FROM pg_index i WHERE i.indrelid = relation AND i.indisunique LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = relation AND a.attname = time_column
                         AND a.attnum = ANY (idx.indkey::int2[])) THEN
            RAISE EXCEPTION 'cannot create a unique index without the column "%" (used in partitioning)', time_column
                USING ERRCODE = 'TS103';
        END IF;
    END LOOP;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM ONLY %s)', relation) INTO has_rows;
    IF has_rows AND NOT migrate_data THEN
        RAISE EXCEPTION 'table "%" is not empty', rel USING ERRCODE = 'TS102',
            HINT = 'You can migrate data by specifying ''migrate_data => true'' when calling this function.';
    END IF;
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET NOT NULL', relation, time_column);
    INSERT INTO _timescaledb_catalog.hypertable (schema_name, table_name, time_column, chunk_interval)
    VALUES (nsp, rel, time_column, iv) RETURNING id INTO existing;
    IF create_default_indexes THEN
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (%I DESC)', rel || '_' || time_column || '_idx',
                       relation, time_column);
    END IF;
    EXECUTE format('CREATE TRIGGER ts_insert_blocker BEFORE INSERT ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION _timescaledb_catalog.route_to_chunk()', relation);
    IF has_rows THEN
        EXECUTE format('WITH moved AS (DELETE FROM ONLY %1$s RETURNING *) INSERT INTO %1$s SELECT * FROM moved', relation);
    END IF;
    RETURN QUERY SELECT existing, true;
END
$$;
"""

_OLD_CREATE_HYPERTABLE = r"""
CREATE FUNCTION create_hypertable(
    relation                REGCLASS,
    time_column_name        NAME,
    partitioning_column     NAME = NULL,
    number_partitions       INTEGER = NULL,
    associated_schema_name  NAME = NULL,
    associated_table_prefix NAME = NULL,
    chunk_time_interval     ANYELEMENT = NULL::bigint,
    create_default_indexes  BOOLEAN = TRUE,
    if_not_exists           BOOLEAN = FALSE,
    partitioning_func       REGPROC = NULL,
    migrate_data            BOOLEAN = FALSE,
    chunk_target_size       TEXT = NULL,
    chunk_sizing_func       REGPROC = NULL,
    time_partitioning_func  REGPROC = NULL
) RETURNS TABLE(hypertable_id INT, schema_name NAME, table_name NAME, created BOOL) LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF partitioning_column IS NOT NULL THEN
        RAISE EXCEPTION 'the stand-in supports time partitioning only';
    END IF;
    PERFORM _timescaledb_catalog.stub_record('create_hypertable', jsonb_build_object(
        'api', 'old', 'relation', relation::text, 'time_column_name', time_column_name,
        'chunk_time_interval', chunk_time_interval::text, 'create_default_indexes', create_default_indexes,
        'if_not_exists', if_not_exists, 'migrate_data', migrate_data));
    SELECT * INTO r FROM _timescaledb_catalog.make_hypertable(relation, time_column_name, chunk_time_interval,
        create_default_indexes, if_not_exists, migrate_data);
    RETURN QUERY SELECT r.hypertable_id, n.nspname, c.relname, r.created
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = relation;
END
$$;
"""

_NEW_CREATE_HYPERTABLE = r"""
CREATE TYPE _timescaledb_internal.dimension_info AS (column_name name, partition_interval text, interval_type regtype);

CREATE FUNCTION by_range(column_name NAME, partition_interval ANYELEMENT = NULL::bigint, partition_func regproc = NULL)
RETURNS _timescaledb_internal.dimension_info LANGUAGE plpgsql AS $$
BEGIN
    RETURN ROW(column_name, partition_interval::text, pg_typeof(partition_interval))::_timescaledb_internal.dimension_info;
END
$$;

CREATE FUNCTION create_hypertable(
    relation                REGCLASS,
    dimension               _timescaledb_internal.dimension_info,
    create_default_indexes  BOOLEAN = TRUE,
    if_not_exists           BOOLEAN = FALSE,
    migrate_data            BOOLEAN = FALSE
) RETURNS TABLE(hypertable_id INT, created BOOL) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM _timescaledb_catalog.stub_record('create_hypertable', jsonb_build_object(
        'api', 'by_range', 'relation', relation::text, 'column_name', (dimension).column_name,
        'partition_interval', (dimension).partition_interval, 'create_default_indexes', create_default_indexes,
        'if_not_exists', if_not_exists, 'migrate_data', migrate_data));
    IF (dimension).interval_type = 'interval'::regtype THEN
        RETURN QUERY SELECT * FROM _timescaledb_catalog.make_hypertable(relation, (dimension).column_name,
            (dimension).partition_interval::interval, create_default_indexes, if_not_exists, migrate_data);
    ELSE
        RETURN QUERY SELECT * FROM _timescaledb_catalog.make_hypertable(relation, (dimension).column_name,
            (dimension).partition_interval::bigint, create_default_indexes, if_not_exists, migrate_data);
    END IF;
END
$$;
"""

_API = r"""
-- What TimescaleDB's utility hook does for ALTER TABLE … SET (timescaledb.compress, …).
CREATE FUNCTION _timescaledb_catalog.stub_alter_table_set(relation regclass, options jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    h _timescaledb_catalog.hypertable := _timescaledb_catalog.stub_hypertable(relation);
    seg text[] := '{}';
    ord text[] := '{}';
    col text;
    con record;
BEGIN
    PERFORM _timescaledb_catalog.stub_record('alter_table_set', jsonb_build_object('relation', relation::text, 'options', options));
    IF (SELECT count(*) FROM jsonb_object_keys(options) k WHERE k NOT IN
        ('timescaledb.compress', 'timescaledb.compress_segmentby', 'timescaledb.compress_orderby')) > 0 THEN
        RAISE EXCEPTION 'the stand-in knows only timescaledb.compress, compress_segmentby and compress_orderby';
    END IF;
    IF coalesce(options->>'timescaledb.compress', 'false') NOT IN ('true', 'on') THEN
        RAISE EXCEPTION 'the stand-in expects timescaledb.compress to be set';
    END IF;
    IF options ? 'timescaledb.compress_segmentby' THEN
        seg := array(SELECT btrim(s) FROM unnest(string_to_array(options->>'timescaledb.compress_segmentby', ',')) s);
    END IF;
    IF options ? 'timescaledb.compress_orderby' THEN
        ord := array(SELECT regexp_replace(btrim(s), '\s+', ' ', 'g') FROM unnest(string_to_array(options->>'timescaledb.compress_orderby', ',')) s);
    ELSE
        ord := ARRAY[h.time_column || ' DESC'];
    END IF;
    FOREACH col IN ARRAY seg || array(SELECT split_part(o, ' ', 1) FROM unnest(ord) o) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = relation AND attname = col AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'column "%" does not exist', col USING ERRCODE = 'undefined_column';
        END IF;
        IF col = ANY (seg) AND col = ANY (array(SELECT split_part(o, ' ', 1) FROM unnest(ord) o)) THEN
            RAISE EXCEPTION 'cannot use column "%" for both ordering and segmenting', col
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    -- As TimescaleDB does: a unique key column neither segmented nor ordered by gets a warning (its
    -- uniqueness cannot be checked on compressed data without decompressing whole batches).
    FOR con IN
        SELECT a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
         WHERE c.conrelid = relation AND c.contype IN ('p', 'u')
    LOOP
        IF NOT (con.attname = ANY (seg) OR con.attname = ANY (array(SELECT split_part(o, ' ', 1) FROM unnest(ord) o))) THEN
            INSERT INTO _timescaledb_catalog.stub_warnings (message)
            VALUES (format('column "%s" should be used for segmenting or ordering', con.attname));
            RAISE WARNING 'column "%" should be used for segmenting or ordering', con.attname;
        END IF;
    END LOOP;
    UPDATE _timescaledb_catalog.hypertable SET segmentby = seg, orderby = ord, compressed = true WHERE id = h.id;
END
$$;

CREATE FUNCTION add_compression_policy(
    hypertable REGCLASS, compress_after ANYELEMENT, if_not_exists BOOL = false,
    schedule_interval INTERVAL = NULL, initial_start TIMESTAMPTZ = NULL, timezone TEXT = NULL
) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    h _timescaledb_catalog.hypertable := _timescaledb_catalog.stub_hypertable(hypertable);
    job_id int;
BEGIN
    PERFORM _timescaledb_catalog.stub_record('add_compression_policy', jsonb_build_object(
        'hypertable', hypertable::text, 'compress_after', compress_after::text,
        'compress_after_type', pg_typeof(compress_after)::text, 'if_not_exists', if_not_exists));
    IF NOT h.compressed THEN
        RAISE EXCEPTION 'compression not enabled on hypertable "%"', hypertable::text USING ERRCODE = 'feature_not_supported',
            HINT = 'Enable compression before adding a compression policy.';
    END IF;
    SELECT id INTO job_id FROM _timescaledb_catalog.job WHERE proc_name = 'policy_compression' AND hypertable_id = h.id;
    IF job_id IS NOT NULL THEN
        IF if_not_exists THEN
            RAISE NOTICE 'compression policy already exists for hypertable "%", skipping', hypertable::text;
            RETURN -1;
        END IF;
        RAISE EXCEPTION 'compression policy already exists for hypertable or continuous aggregate "%"', hypertable::text
            USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO _timescaledb_catalog.job (proc_name, hypertable_id, config)
    VALUES ('policy_compression', h.id, jsonb_build_object('hypertable_id', h.id, 'compress_after', compress_after::text))
    RETURNING id INTO job_id;
    RETURN job_id;
END
$$;

CREATE FUNCTION remove_compression_policy(hypertable REGCLASS, if_exists BOOL = false) RETURNS BOOL LANGUAGE plpgsql AS $$
DECLARE
    h _timescaledb_catalog.hypertable := _timescaledb_catalog.stub_hypertable(hypertable);
BEGIN
    PERFORM _timescaledb_catalog.stub_record('remove_compression_policy', jsonb_build_object(
        'hypertable', hypertable::text, 'if_exists', if_exists));
    DELETE FROM _timescaledb_catalog.job WHERE proc_name = 'policy_compression' AND hypertable_id = h.id;
    IF NOT FOUND THEN
        IF if_exists THEN
            RAISE NOTICE 'compression policy not found for hypertable "%", skipping', hypertable::text;
            RETURN false;
        END IF;
        RAISE EXCEPTION 'compression policy not found for hypertable "%"', hypertable::text USING ERRCODE = 'undefined_object';
    END IF;
    RETURN true;
END
$$;

CREATE FUNCTION add_retention_policy(
    relation REGCLASS, drop_after ANYELEMENT, if_not_exists BOOL = false,
    schedule_interval INTERVAL = NULL, initial_start TIMESTAMPTZ = NULL, timezone TEXT = NULL
) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    h _timescaledb_catalog.hypertable := _timescaledb_catalog.stub_hypertable(relation);
    job_id int;
BEGIN
    PERFORM _timescaledb_catalog.stub_record('add_retention_policy', jsonb_build_object(
        'relation', relation::text, 'drop_after', drop_after::text,
        'drop_after_type', pg_typeof(drop_after)::text, 'if_not_exists', if_not_exists));
    SELECT id INTO job_id FROM _timescaledb_catalog.job WHERE proc_name = 'policy_retention' AND hypertable_id = h.id;
    IF job_id IS NOT NULL THEN
        IF if_not_exists THEN
            RAISE NOTICE 'retention policy already exists for hypertable "%", skipping', relation::text;
            RETURN -1;
        END IF;
        RAISE EXCEPTION 'retention policy already exists for hypertable "%"', relation::text USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO _timescaledb_catalog.job (proc_name, hypertable_id, config)
    VALUES ('policy_retention', h.id, jsonb_build_object('hypertable_id', h.id, 'drop_after', drop_after::text))
    RETURNING id INTO job_id;
    RETURN job_id;
END
$$;

CREATE FUNCTION remove_retention_policy(relation REGCLASS, if_exists BOOL = false) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    h _timescaledb_catalog.hypertable := _timescaledb_catalog.stub_hypertable(relation);
BEGIN
    PERFORM _timescaledb_catalog.stub_record('remove_retention_policy', jsonb_build_object(
        'relation', relation::text, 'if_exists', if_exists));
    DELETE FROM _timescaledb_catalog.job WHERE proc_name = 'policy_retention' AND hypertable_id = h.id;
    IF NOT FOUND THEN
        IF if_exists THEN
            RAISE NOTICE 'retention policy not found for hypertable "%", skipping', relation::text;
            RETURN;
        END IF;
        RAISE EXCEPTION 'retention policy not found for hypertable "%"', relation::text USING ERRCODE = 'undefined_object';
    END IF;
END
$$;

CREATE FUNCTION show_chunks(relation REGCLASS, older_than ANYELEMENT = NULL::timestamptz, newer_than ANYELEMENT = NULL::timestamptz)
RETURNS SETOF REGCLASS LANGUAGE plpgsql AS $$
DECLARE
    h _timescaledb_catalog.hypertable := _timescaledb_catalog.stub_hypertable(relation);
BEGIN
    RETURN QUERY SELECT format('_timescaledb_internal.%I', c.table_name)::regclass
      FROM _timescaledb_catalog.chunk c
     WHERE c.hypertable_id = h.id
       AND (older_than IS NULL OR c.range_end <= older_than::text::timestamptz)
       AND (newer_than IS NULL OR c.range_start >= newer_than::text::timestamptz)
     ORDER BY c.range_start;
END
$$;

CREATE FUNCTION drop_chunks(relation REGCLASS, older_than ANYELEMENT = NULL::timestamptz,
                            newer_than ANYELEMENT = NULL::timestamptz, verbose BOOLEAN = FALSE)
RETURNS SETOF TEXT LANGUAGE plpgsql AS $$
DECLARE
    h _timescaledb_catalog.hypertable := _timescaledb_catalog.stub_hypertable(relation);
    cutoff timestamptz;
    ch _timescaledb_catalog.chunk;
BEGIN
    PERFORM _timescaledb_catalog.stub_record('drop_chunks', jsonb_build_object(
        'relation', relation::text, 'older_than', older_than::text, 'older_than_type', pg_typeof(older_than)::text));
    IF older_than IS NULL THEN
        RAISE EXCEPTION 'invalid time range for dropping chunks' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    cutoff := CASE WHEN pg_typeof(older_than) = 'interval'::regtype THEN now() - older_than::text::interval
                   ELSE older_than::text::timestamptz END;
    FOR ch IN SELECT * FROM _timescaledb_catalog.chunk WHERE hypertable_id = h.id AND range_end <= cutoff ORDER BY range_start LOOP
        EXECUTE format('DROP TABLE _timescaledb_internal.%I', ch.table_name);
        IF ch.compressed_table IS NOT NULL THEN
            EXECUTE format('DROP TABLE _timescaledb_internal.%I', ch.compressed_table);
        END IF;
        DELETE FROM _timescaledb_catalog.chunk WHERE id = ch.id;
        RETURN NEXT '_timescaledb_internal.' || ch.table_name;
    END LOOP;
END
$$;

-- Compression as far as sizes go: the chunk's rows, as text, in a TOAST-compressed side table.
CREATE FUNCTION compress_chunk(uncompressed_chunk REGCLASS, if_not_compressed BOOLEAN = true,
                               recompress BOOLEAN = false) RETURNS REGCLASS LANGUAGE plpgsql AS $$
DECLARE
    ch _timescaledb_catalog.chunk;
    compressed name;
BEGIN
    SELECT c.* INTO ch FROM _timescaledb_catalog.chunk c
     WHERE format('_timescaledb_internal.%I', c.table_name)::regclass = uncompressed_chunk;
    IF ch.id IS NULL THEN
        RAISE EXCEPTION 'chunk "%" is not a chunk', uncompressed_chunk::text;
    END IF;
    IF ch.compressed_table IS NOT NULL THEN
        IF if_not_compressed THEN
            RAISE NOTICE 'chunk "%" is already compressed', uncompressed_chunk::text;
            RETURN uncompressed_chunk;
        END IF;
        RAISE EXCEPTION 'chunk "%" is already compressed', uncompressed_chunk::text;
    END IF;
    compressed := 'compress' || ch.table_name;
    EXECUTE format('CREATE TABLE _timescaledb_internal.%I AS SELECT string_agg(c::text, E''\n'') AS batch FROM %s c',
                   compressed, uncompressed_chunk);
    UPDATE _timescaledb_catalog.chunk
       SET compressed_table = compressed,
           before_compression_total_bytes = pg_total_relation_size(uncompressed_chunk),
           after_compression_total_bytes = pg_total_relation_size(format('_timescaledb_internal.%I', compressed)::regclass)
     WHERE id = ch.id;
    RETURN uncompressed_chunk;
END
$$;

-- A compressed chunk's heap is emptied by real compression; its size is then the compressed table's.
CREATE FUNCTION hypertable_size(hypertable REGCLASS) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    h _timescaledb_catalog.hypertable;
BEGIN
    BEGIN
        h := _timescaledb_catalog.stub_hypertable(hypertable);
    EXCEPTION WHEN SQLSTATE 'TS102' THEN
        RETURN NULL;
    END;
    RETURN pg_total_relation_size(hypertable) + coalesce((
        SELECT sum(CASE WHEN c.compressed_table IS NULL
                        THEN pg_total_relation_size(format('_timescaledb_internal.%I', c.table_name)::regclass)
                        ELSE c.after_compression_total_bytes END)
          FROM _timescaledb_catalog.chunk c WHERE c.hypertable_id = h.id), 0)::bigint;
END
$$;

CREATE FUNCTION hypertable_compression_stats(hypertable REGCLASS)
RETURNS TABLE (
    total_chunks bigint, number_compressed_chunks bigint,
    before_compression_table_bytes bigint, before_compression_index_bytes bigint,
    before_compression_toast_bytes bigint, before_compression_total_bytes bigint,
    after_compression_table_bytes bigint, after_compression_index_bytes bigint,
    after_compression_toast_bytes bigint, after_compression_total_bytes bigint, node_name name
) LANGUAGE plpgsql AS $$
DECLARE
    h _timescaledb_catalog.hypertable := _timescaledb_catalog.stub_hypertable(hypertable);
BEGIN
    IF NOT h.compressed THEN
        RETURN;
    END IF;
    -- As TimescaleDB's: one row per data node (GROUP BY), so none while the hypertable has no chunk.
    RETURN QUERY
    SELECT count(*)::bigint, (count(*) FILTER (WHERE c.compressed_table IS NOT NULL))::bigint,
           NULL::bigint, NULL::bigint, NULL::bigint, sum(c.before_compression_total_bytes)::bigint,
           NULL::bigint, NULL::bigint, NULL::bigint, sum(c.after_compression_total_bytes)::bigint, NULL::name
      FROM _timescaledb_catalog.chunk c WHERE c.hypertable_id = h.id
     GROUP BY h.id;
END
$$;
"""
