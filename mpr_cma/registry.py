"""Registries of MPR-CMA, children of mmengine's root registries.

Configs refer to classes either by `type=ClassName` (looked up here) or by `type=Class`
(the class object itself, navigable from the config). Modules register themselves with
`@MODELS.register_module()`; `locations` makes the registries import them on first use.
"""

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    "model", parent=MMENGINE_MODELS, locations=["mpr_cma.models", "mpr_cma.losses"]
)
