"""Planning: infer, from a published wheel and its sdist, everything its rebuild needs."""
