"""Source tracing: does a release's sdist match the git tag it claims to come from?

``locate`` finds the repository, ``clone`` fetches it into a cache, ``tags`` finds the
tag naming the version, ``compare`` judges the sdist against ``git archive`` of that
commit (every difference explained by a named rule or reported), ``rebuild`` builds the
sdist and the pure wheel from the checkout, and ``trace`` ties them together
(:func:`rebuilder.source.trace.trace_release`). See ``docs/source-tracing.md``.
"""
