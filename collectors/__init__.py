"""Protocol code: collectors speak SNMP or MQTT and return typed readings; they never touch storage."""
