"""MPR-CMA: Sa2VA with Mask-Biased Attention, Text-Mask Contrastive and boundary losses."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
TEST_TOOLS = {"pytest", "ruff"}


def runtime_requirements() -> list[str]:
    """The pinned lines of requirements.txt, minus the test and lint tools."""
    reqs = []
    for line in (HERE / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and line.split("==")[0] not in TEST_TOOLS:
            reqs.append(line)
    return reqs


setup(
    name="mpr_cma",
    version="0.1.0",
    description=(
        "Mask-prior-guided cross-modal attention for dense video grounding (Sa2VA + MBA)"
    ),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["mpr_cma", "mpr_cma.*"]),
    include_package_data=True,
    install_requires=runtime_requirements(),
    extras_require={"test": ["pytest==9.0.3", "ruff==0.17.6"]},
)
