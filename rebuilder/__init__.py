"""pypi-rebuilder: independently rebuild PyPI releases and judge them byte for byte."""

__version__ = "0.1.0"
