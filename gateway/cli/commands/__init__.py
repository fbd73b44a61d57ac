"""One module per command group; each has ``register(commands)`` (see ``cli/main.py``)."""
