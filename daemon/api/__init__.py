"""The HTTP API, /api/v1: the same stores and services as the CLI, behind logins and roles."""
