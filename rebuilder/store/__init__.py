"""Storage of the fleet: PostgreSQL (state, the transparency log) and evidence blobs."""
