"""Queue names, in the order a worker serves them: a push about a cluster goes before a heatmap
increment, then a partner's webhook, before an export file or housekeeping.

Handlers name their queue when they register (backend/outbox/registry.py); `python -m worker` serves
``ALL`` by default, and every worker pool in deploy/k8s must serve each queue some handler uses
(tests/worker/test_registry.py checks both)."""

ALERTS = "alerts"
HEATMAP = "heatmap"
# Partners' receivers may be slow (up to WEBHOOK_TIMEOUT_S each): never in the way of an alert.
WEBHOOKS = "webhooks"
EXPORTS = "exports"
MAINTENANCE = "maintenance"

ALL = (ALERTS, HEATMAP, WEBHOOKS, EXPORTS, MAINTENANCE)
