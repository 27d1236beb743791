"""The core schema on SQLite. Append-only: add a new migration, never edit one that has landed."""

from sqlite_utils import Database, Migrations

core = Migrations("godel-core")


@core()
def m001_events(db: Database) -> None:
    # seq is the rowid: appends go to the end of the table. AUTOINCREMENT keeps a seq from ever
    # being reused, even if the newest events are deleted by retention.
    db.execute(
        """
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            timestamp INTEGER NOT NULL,
            source TEXT NOT NULL,
            data TEXT NOT NULL,
            metadata TEXT NOT NULL
        )
        """
    )


@core()
def m002_meta(db: Database) -> None:
    db.execute("CREATE TABLE godel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
