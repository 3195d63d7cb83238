"""What a client needs to know about this deployment: the time zone, the vocabulary, the limits."""
