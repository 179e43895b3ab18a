"""The customers' portal at /portal: the console's stack (templates, CSRF, CSP, languages), its own door.

Its sessions have their own cookie and idle time (``portal.session_idle_minutes``) and take only
``customer`` accounts; every page reads through daemon.services.portal's Scope.
"""
