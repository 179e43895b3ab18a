"""Who may do what: users and roles, passwords, second factors, sessions and API tokens."""
