"""Core: what every stage uses — one-line errors, progress bars, atomic writes, the user's config files and
the accelerator switch. Imports nothing else of oodbench; every other subpackage may import it."""
