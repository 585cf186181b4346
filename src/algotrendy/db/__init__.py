"""Records database: engines, sessions, shared column types, outbox/inbox and migrations."""
