"""The course site: built from the executed notebooks, docs/ and refimpl's docstrings."""
