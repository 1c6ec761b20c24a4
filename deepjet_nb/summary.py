"""Deprecated name of :mod:`deepjet_nb.record` (the numbers a notebook records).

Importing it warns and gives :mod:`deepjet_nb.record` itself; the name goes in the next release.
"""

from ._deprecated import alias_renamed_module

alias_renamed_module(__name__, "deepjet_nb.record")
