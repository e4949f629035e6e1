"""Safe readers for untrusted archives (wheels, sdists): limits, no unsafe extraction."""
