"""The Rasa project and the gateway's side of it."""
