"""Statistics and reports: the centre's figures over a period (conversations by channel, what the bot settled alone,
handoffs and why, each department's work orders the way 12345 hotlines are assessed), computed from the stored
events with the definitions in docs/metrics.md, and served to supervisors at `/api/reports/*`.
"""
