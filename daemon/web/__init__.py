"""The web console: server-rendered pages for billing staff, technicians and admins, beside the API."""
