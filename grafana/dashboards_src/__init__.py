"""Grafana dashboards as code: each module builds one dashboard as a plain dict.

`grafana/generate.py` writes them to `grafana/dashboards/*.json` (what Grafana provisions)
and, with `--check`, fails when the committed JSON differs from what the code builds.
"""
