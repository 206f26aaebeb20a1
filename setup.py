# Native parts of leaktrace are declared here; everything else lives in pyproject.toml.
from setuptools import setup

setup(ext_modules=[])
