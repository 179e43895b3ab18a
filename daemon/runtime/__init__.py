"""The daemon's process: lifecycle, job schedule, HTTP listener and logging set-up."""
