"""Apps the shutdown tests run under real servers (each in its own process)."""
