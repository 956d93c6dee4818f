"""Research extensions built on mpr_cma (see projects/README.md); a package so that configs
name their modules in `custom_imports` as `projects.<name>.<module>`."""
