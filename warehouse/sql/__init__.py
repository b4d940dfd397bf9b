"""SQL: engine connections, DDL migrations (ddl/), named queries (queries/), translation."""
