"""Only what pyproject.toml cannot say: the top-level resources/ folder (fixed there by the product's
design) installs as the package `ganstudio_resources` (icon, .desktop entry, style sheet), found at
run time with importlib.resources from a wheel and from an editable install alike. (A subpackage
mapping such as ganstudio.resources -> resources/ is lost by setuptools' editable finder.)"""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["trainer*", "ganstudio*"]) + ["ganstudio_resources"],
      package_dir={"ganstudio_resources": "resources"},
      package_data={"ganstudio_resources": ["*.svg", "*.qss", "*.desktop"]})
