"""The tables of ``<home>/review.duckdb``, created and versioned by this module.

``candidates`` holds one row per image under review, joined at import time from a mining run's
candidates and the source tables (paths, not image bytes). ``events`` is the
append-only log of decisions: nothing here or elsewhere issues UPDATE or DELETE on it. An image's
current verdict is derived from it by :data:`CURRENT_SQL`. ``relabels`` (schema version 2) is the
append-only log of label changes; its events take their ``seq`` from the same sequence as
``events``, so one ``undo`` event (in ``events``) names either kind without ambiguity.
"""

from __future__ import annotations

import duckdb

from ..errors import ImHardError

SCHEMA_VERSION = 3

DDL = [
    "CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    """CREATE TABLE runs (
        run VARCHAR PRIMARY KEY,
        candidates_path VARCHAR NOT NULL,
        judge VARCHAR,
        summary VARCHAR,              -- the run's RunSummary as JSON
        n_candidates BIGINT NOT NULL,
        imported_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE sources (
        source VARCHAR PRIMARY KEY,
        table_path VARCHAR NOT NULL,  -- the source parquet the candidates were joined with
        label_spaces VARCHAR          -- JSON of extra label spaces (objectnet_113)
    )""",
    """CREATE TABLE candidates (
        id VARCHAR PRIMARY KEY,
        run VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        origin VARCHAR NOT NULL,
        label BIGINT[] NOT NULL,
        english_label VARCHAR[] NOT NULL,
        label_space VARCHAR NOT NULL,
        top5 BIGINT[] NOT NULL,
        top5_names VARCHAR[] NOT NULL,
        top5_prob FLOAT[] NOT NULL,
        best_crop SMALLINT,
        path VARCHAR NOT NULL,        -- image file, relative to the data home
        width INTEGER,
        height INTEGER
    )""",
    "CREATE SEQUENCE event_seq START 1",
    """CREATE TABLE events (
        seq BIGINT PRIMARY KEY DEFAULT nextval('event_seq'),
        id VARCHAR NOT NULL,
        verdict VARCHAR NOT NULL CHECK (verdict IN ('keep', 'remove', 'undo')),
        reason VARCHAR,
        tags VARCHAR[] NOT NULL,
        note VARCHAR,
        reviewer VARCHAR,
        "at" TIMESTAMPTZ NOT NULL,
        undoes BIGINT                 -- for verdict 'undo': the seq of the event it cancels
    )""",
]

#: Version 2: relabelling in review is the only way a published label changes (issue 24).
RELABELS_DDL = """CREATE TABLE relabels (
    seq BIGINT PRIMARY KEY DEFAULT nextval('event_seq'),
    id VARCHAR NOT NULL,
    label BIGINT[] NOT NULL,      -- the new label list, ImageNet-1k indices
    reason VARCHAR NOT NULL,      -- why the label changes; it goes into the release's changes
    note VARCHAR,
    reviewer VARCHAR,
    "at" TIMESTAMPTZ NOT NULL
)"""
DDL.append(RELABELS_DDL)

#: Version 3: the label-error queue (issue 25): images where several models that scored a
#: version agree, confidently, on a class outside the label set; one row per image and batch
#: (what the evidence came from). A reviewer answers with a relabel or a decision, as for any
#: candidate; the queue shows what was answered after the evidence arrived.
LABEL_ERRORS_DDL = """CREATE TABLE label_errors (
    id VARCHAR NOT NULL,
    batch VARCHAR NOT NULL,       -- e.g. "board leaderboard v1.0.0" or a predictions file
    suggested BIGINT NOT NULL,    -- the class the models agree on
    label BIGINT[] NOT NULL,      -- the label set they disagree with
    models VARCHAR[] NOT NULL,
    confidences FLOAT[] NOT NULL, -- each model's probability of the suggested class
    thresholds FLOAT[] NOT NULL,  -- each model's per-class threshold (confident learning)
    models_total INTEGER NOT NULL,
    score FLOAT NOT NULL,         -- mean confidence of the agreeing models
    "at" TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id, batch)
)"""
DDL.append(LABEL_ERRORS_DDL)

#: Decision events that no undo event cancels.
EFFECTIVE_SQL = """
    SELECT e.* FROM events e
    WHERE e.verdict IN ('keep', 'remove')
      AND NOT EXISTS (SELECT 1 FROM events u WHERE u.verdict = 'undo' AND u.undoes = e.seq)
"""

#: One row per decided id: its latest effective event, by decision time then by log order (so a
#: decision applied from another store with an older time does not override a newer one here).
CURRENT_SQL = f"""
    SELECT * FROM ({EFFECTIVE_SQL})
    QUALIFY row_number() OVER (PARTITION BY id ORDER BY "at" DESC, seq DESC) = 1
"""

#: Relabel events that no undo event cancels.
EFFECTIVE_RELABELS_SQL = """
    SELECT r.* FROM relabels r
    WHERE NOT EXISTS (SELECT 1 FROM events u WHERE u.verdict = 'undo' AND u.undoes = r.seq)
"""

#: One row per relabelled id: its latest effective relabel event.
CURRENT_RELABELS_SQL = f"""
    SELECT * FROM ({EFFECTIVE_RELABELS_SQL})
    QUALIFY row_number() OVER (PARTITION BY id ORDER BY "at" DESC, seq DESC) = 1
"""

#: ``at`` as ISO-8601 text in UTC (fetching TIMESTAMPTZ into Python would need pytz).
AT_ISO = """strftime(timezone('UTC', "at"), '%Y-%m-%dT%H:%M:%S.%fZ')"""


def has_schema(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'"
    ).fetchall()[0]
    return bool(row[0])


def schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    if not has_schema(con):
        return None
    rows = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    return int(rows[0][0]) if rows else None


def ensure_schema(con: duckdb.DuckDBPyConnection, path) -> None:
    """Create the tables in a new file; refuse a file written by a newer imagenet-hard."""
    version = schema_version(con)
    if version is None:
        con.execute("BEGIN TRANSACTION")
        for statement in DDL:
            con.execute(statement)
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        con.execute("COMMIT")
        return
    if version > SCHEMA_VERSION:
        raise ImHardError(
            f"{path} has review schema version {version}; this imagenet-hard reads up to "
            f"{SCHEMA_VERSION}. Upgrade imagenet-hard."
        )
    # Migrations, one step at a time (version 1 is the first).
    if version < 2:
        con.execute("BEGIN TRANSACTION")
        con.execute(RELABELS_DDL)
        con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        con.execute("COMMIT")
    if version < 3:
        con.execute("BEGIN TRANSACTION")
        # IF NOT EXISTS: a file stepped back by hand to an older version may keep the table
        con.execute(LABEL_ERRORS_DDL.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
        con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        con.execute("COMMIT")


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the file has table ``name`` (an older file opened read-only may not)."""
    return bool(con.execute("SELECT count(*) FROM information_schema.tables "
                            "WHERE table_name = ?", [name]).fetchall()[0][0])


def has_relabels(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the file has the ``relabels`` table (a version-1 file opened read-only has not)."""
    return bool(con.execute("SELECT count(*) FROM information_schema.tables "
                            "WHERE table_name = 'relabels'").fetchall()[0][0])
