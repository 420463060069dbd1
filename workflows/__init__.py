"""Journeys and the runtime they are written with. No I/O happens in this package.

Deliberately empty of imports: the workflow sandbox imports this package before any journey
module, and a module imported here would be loaded inside the sandbox rather than passed
through (its `datetime` would be the sandbox's stand-in, which breaks decoding activity
results with datetime fields). Import from the modules themselves.
"""
