"""Packaging beyond what pyproject.toml can say: the project's config/ directory (default
configs and the team tables) ships inside the wheel as the package data ``shared.defaults``
(shared/config.py looks there when no checkout's config/ is beside it); the gateway's web page
(services/gateway/static/) is package data of ``services.gateway``. Everything else -
metadata, dependencies, scripts - is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["shared*", "services*"]), "shared.defaults", "shared.defaults.teams"],
    package_dir={"shared.defaults": "config"},
    package_data={
        "shared.defaults": ["*.toml"],
        "shared.defaults.teams": ["*.toml"],
        "shared.store.migrations": ["script.py.mako"],
        "services.gateway": ["static/*"],
    },
)
