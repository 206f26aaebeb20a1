"""The fixed service: the leaky service's API, built by dependency injection with bounded resources."""
