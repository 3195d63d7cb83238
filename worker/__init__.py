"""RQ entry points. Thin: jobs unpack arguments and call backend services (STYLE.md).

- ``python -m worker``            an RQ worker on every queue, in priority order
- ``python -m worker.scheduler``  RQ's cron scheduler for periodic work (worker/schedule.py)
"""
