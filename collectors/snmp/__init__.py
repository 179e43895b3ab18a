"""SNMP collection: the pysnmp client, vendor profiles, the polled collector."""
