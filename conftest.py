# Root conftest: what pytest must not import as modules for doctests.
# `python -m pft` must not run while pytest imports modules for doctests.
collect_ignore = ["pft/__main__.py"]
# conftest files hold fixtures, not doctests; collecting them as modules under --doctest-modules
# imports several modules named "conftest" (an import-file-mismatch error, depending on order).
collect_ignore_glob = ["tests/conftest.py", "tests/*/conftest.py"]
