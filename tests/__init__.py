"""The test suite (a package, so that test modules are named by their folder: tests.session.test_export)."""
