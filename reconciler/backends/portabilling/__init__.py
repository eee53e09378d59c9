"""The PortaBilling backend, one package: ``backend`` (the Backend), ``client`` (transport,
retries, paging), ``session`` (tokens), ``config`` (URL, credentials, settings), ``errors``,
``answers`` (reading answers), ``fields`` (every assumed wire field, with its evidence),
``reads``, ``writes`` and ``ops`` (the changes), ``audit`` (lock and audit log).

Nothing is imported here, so that a module of the package can import its siblings without
loading the whole backend: import ``reconciler.backends.portabilling.backend`` for the backend.
"""
