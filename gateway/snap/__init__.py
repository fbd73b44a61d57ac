"""SNAP protocol code: signatures, tokens, timestamps, codes and field rules.

Nothing in this package imports a web framework; the Starlette app and the DOKU client both
build on it.
"""
