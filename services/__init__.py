"""Sample services for leaktrace: a profile store, a leaky service, its fixed twin, a load generator.

Each service is runnable as ``python -m services.<name>``; its ``main(argv=None)`` is the composition
root that builds the Telemetry and passes it down. Nothing starts at import.
"""
