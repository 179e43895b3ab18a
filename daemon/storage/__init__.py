"""The store: SQLAlchemy tables, Alembic migrations and the repository the pipeline writes through."""
