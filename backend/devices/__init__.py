"""Devices: where pushes go (FCM registration tokens), and what their owners asked to hear about."""
