"""`meterd demo`: a simulated fleet of printers, polled by a real daemon on a throwaway store."""
