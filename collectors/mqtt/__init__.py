"""MQTT: readings in (hub ingest) and out (agent forwarding), reading-v1 over MQTT 5, QoS 1."""
