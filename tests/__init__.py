"""The test suite (a package, so that tests/conftest.py does not put tests/ on sys.path)."""
