"""Safe hubs: places a commuter who feels unsafe can go to, with their opening hours."""
