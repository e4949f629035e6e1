"""The composition root: the ``rebuilder`` command and everything that wires the packages.

Only this package reads :class:`~rebuilder.settings.Settings` into concrete adapters
(PostgreSQL pools, the broker, Docker, the index client, git) and hands them to the
core (``rebuilder``), the scheduler and the web app (``reports``). Nothing imports it
but the console script. See docs/architecture.md.
"""
