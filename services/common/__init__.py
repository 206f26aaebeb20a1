"""Pieces shared by the sample services: input validation, serving, telemetry glue."""
