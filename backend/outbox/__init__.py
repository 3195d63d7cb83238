"""Follow-up work and the events that cause it: ``registry`` (who handles what), ``service`` (the
outbox table: publish, claim, run)."""
