"""Deprecated name of :mod:`deepjet_nb.batches` (batches of jets streamed from a converted dataset).

Importing it warns and gives :mod:`deepjet_nb.batches` itself; the name goes in the next release.
"""

from ._deprecated import alias_renamed_module

alias_renamed_module(__name__, "deepjet_nb.batches")
