"""Partner webhooks: subscriptions managed by admins, deliveries signed per Standard Webhooks."""
