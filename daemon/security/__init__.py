"""Security primitives with no store and no settings: roles, password hashing, sealing, throttles."""
