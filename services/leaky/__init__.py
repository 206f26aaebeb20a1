"""The leaky service: leaks on purpose (global session map, a client per session, a thread per job)."""
