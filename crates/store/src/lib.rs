//! Persistence for retain: SQLite by default, PostgreSQL for shared workspaces.
