"""Council lighting-improvement exports: ranked places to light, written as files by RQ workers."""
