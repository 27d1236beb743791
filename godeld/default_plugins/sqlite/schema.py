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


@core()
def m004_workflows(db: Database) -> None:
    # A run and its steps, each a JSON record beside the columns that are filtered on. Every
    # state transition rewrites one small row, so a crash never loses more than the transition
    # in flight, and a restart finds each unfinished run with all its steps.
    db.executescript(
        """
        CREATE TABLE workflow_runs (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            state TEXT NOT NULL,
            parent_id TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            record TEXT NOT NULL
        );
        CREATE INDEX workflow_runs_state ON workflow_runs (state);
        CREATE TABLE workflow_steps (
            run_id TEXT NOT NULL,
            step_id TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            record TEXT NOT NULL,
            PRIMARY KEY (run_id, step_id)
        ) WITHOUT ROWID;
        """
    )


@core()
def m005_tasks(db: Database) -> None:
    # The task queue (godeld/tasks). `seq` orders equal priorities by submission; `pending_deps`
    # counts dependencies not yet completed, so a claim needs no join; `task_groups.running` is
    # kept in the same transactions as the task states, so a claim checks a group's limit by
    # reading one row (on PostgreSQL: UPDATE ... WHERE running < parallel).
    db.executescript(
        """
        CREATE TABLE tasks (
            id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL UNIQUE,
            state TEXT NOT NULL,
            priority INTEGER NOT NULL,
            grp TEXT NOT NULL,
            swarm TEXT,
            pending_deps INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            max_attempts INTEGER NOT NULL,
            requeues INTEGER NOT NULL,
            lease_owner TEXT,
            lease_expires_at INTEGER,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            started_at INTEGER,
            finished_at INTEGER,
            spec TEXT NOT NULL,
            run TEXT,
            result TEXT,
            error TEXT
        );
        CREATE INDEX tasks_queued ON tasks (priority DESC, seq) WHERE state = 'queued';
        CREATE INDEX tasks_leases ON tasks (lease_expires_at) WHERE state = 'running';
        CREATE INDEX tasks_state ON tasks (state, seq);
        CREATE TABLE task_deps (
            task_id TEXT NOT NULL,
            dep_id TEXT NOT NULL,
            PRIMARY KEY (task_id, dep_id)
        ) WITHOUT ROWID;
        CREATE INDEX task_deps_dep ON task_deps (dep_id);
        CREATE TABLE task_groups (
            name TEXT PRIMARY KEY,
            parallel INTEGER,
            running INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        """
    )


@core()
def m006_skills(db: Database) -> None:
    # Which skills are active for which agent or swarm (scope: 'agent' | 'swarm').
    db.executescript(
        """
        CREATE TABLE skill_activations (
            scope TEXT NOT NULL,
            target TEXT NOT NULL,
            name TEXT NOT NULL,
            activated_at INTEGER NOT NULL,
            PRIMARY KEY (scope, target, name)
        ) WITHOUT ROWID;
        """
    )


@core()
def m007_swarms(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE swarms (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            record TEXT NOT NULL
        );
        CREATE INDEX swarms_state ON swarms (state);
        """
    )
