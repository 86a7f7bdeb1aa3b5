"""Handoff to people and the agent inbox: the conversation's status machine (bot → pending → open → resolved → bot),
assignment to agents by department, service hours, the satisfaction survey, and the inbox (JSON API, pages, socket).

The public face is `HandoffService` (handoff/service.py, which lists its parts), built by the app at start-up.
"""
