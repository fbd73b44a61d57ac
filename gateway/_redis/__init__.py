"""Redis plumbing shared by the state, journal and ledger backends (private).

``connect`` builds a client for any ``cache.url`` scheme, ``batch`` pipelines one loop turn's
commands, ``breaker`` turns Redis failures into "unavailable" in one place, ``keys`` holds the key
format version, and ``lua/`` the server-side scripts.
"""
