"""The ``medip`` command line (installed as ``medip.cli``)."""
