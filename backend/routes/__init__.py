"""Walking routes over the street network: the shortest, and a safer one (pgRouting)."""
