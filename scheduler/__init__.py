"""Discovery and dispatch (the fleet): not built yet."""
