"""pft.residual (see the package docstring of pft for an overview)."""

__all__: list[str] = []
