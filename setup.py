"""The one thing pyproject.toml cannot say: the migrations live at the top of the repository, in
`alembic/` (as the design lays it out), and install as the package `researchdesk.migrations`,
so that `alembic upgrade head` works from a checkout and `researchdesk migrate` from a wheel.

`alembic/` has no `__init__.py` on purpose: a regular package of that name at the repository's
root would shadow the `alembic` library for anything run from there (pytest puts the root on
`sys.path`).
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "researchdesk.migrations", "researchdesk.migrations.versions"],
    package_dir={"": "src", "researchdesk.migrations": "alembic"},
    package_data={
        "researchdesk": [
            "py.typed",
            "testing/fixtures/**/*",
            "pricing/*.json",
            "dashboard/templates/*",
            "dashboard/assets/*",
        ],
        "researchdesk.migrations": ["script.py.mako"],
    },
)
