"""Deprecated name of :mod:`deepjet_nb.testing` (random ntuples for tests).

Importing it warns and gives :mod:`deepjet_nb.testing` itself; the name goes in the next release.
"""

from ._deprecated import alias_renamed_module

alias_renamed_module(__name__, "deepjet_nb.testing")
