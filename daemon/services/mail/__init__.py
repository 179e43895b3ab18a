"""Outbound e-mail: the outbox in the store (outbox), the relay (transport), what is sent (compose)."""
