"""The `meterd` command line: one module per command group, `main` parses and dispatches."""
