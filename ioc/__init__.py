"""Composition root: settings, the ``ioc`` command, starting and stopping services."""
