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


@core()
def m003_agents(db: Database) -> None:
    # The columns services filter on; the rest of an agent's record is the JSON `record`.
    db.executescript(
        """
        CREATE TABLE agents (
            id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            record TEXT NOT NULL
        );
        CREATE INDEX agents_state ON agents (state);
        CREATE TABLE agent_transcript (
            agent_id TEXT NOT NULL,
            n INTEGER NOT NULL,
            ts INTEGER NOT NULL,
            kind TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (agent_id, n)
        ) WITHOUT ROWID;
        CREATE TABLE usage_ledger (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts INTEGER NOT NULL,
            day TEXT NOT NULL,
            agent_id TEXT,
            swarm_id TEXT,
            workflow_id TEXT,
            task_id TEXT,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cache_read_tokens INTEGER NOT NULL,
            cache_write_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            duration_ms INTEGER NOT NULL,
            price_version TEXT NOT NULL
        );
        CREATE INDEX usage_ledger_agent ON usage_ledger (agent_id);
        CREATE INDEX usage_ledger_day ON usage_ledger (day);
        CREATE TABLE budget_limits (
            scope TEXT NOT NULL,
            scope_id TEXT NOT NULL,
            max_cost_usd REAL,
            max_tokens INTEGER,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (scope, scope_id)
        );
        CREATE TABLE approvals (
            id TEXT PRIMARY KEY,
            agent_id TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            record TEXT NOT NULL
        );
        CREATE INDEX approvals_state ON approvals (state);
        """
    )
