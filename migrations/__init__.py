"""Alembic migrations of TensorQ's database (shipped as a package so installs carry them)."""
