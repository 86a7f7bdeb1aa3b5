"""Code that runs inside the Rasa engine's own environment (.venv-rasa, Python 3.10); never imported by the gateway."""
