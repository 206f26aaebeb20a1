"""Shared fixtures. Plugins in tests/support are owned by the component that needs them."""

pytest_plugins = ["tests.support.prometheus"]
