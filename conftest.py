# Root conftest: `python -m pft` must not run while pytest imports modules for doctests.
collect_ignore = ["pft/__main__.py"]
