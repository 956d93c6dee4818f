"""Registries of MPR-CMA, children of mmengine's root registries.

Configs refer to classes by `type='ClassName'`, looked up here (or in mmengine's parent
registries). Modules register themselves with `@MODELS.register_module()` etc.;
`locations` makes a registry import its package the first time it is used.
"""

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

# Models, their parts and the losses.
MODELS = Registry(
    "model", parent=MMENGINE_MODELS, locations=["mpr_cma.models", "mpr_cma.losses"]
)
# Training datasets (readers of the real formats + conversation building).
DATASETS = Registry("dataset", parent=MMENGINE_DATASETS, locations=["mpr_cma.datasets"])
# Functions referenced from configs, e.g. the collate function of the data loader.
FUNCTIONS = Registry("function", parent=MMENGINE_FUNCTIONS, locations=["mpr_cma.datasets"])
# Training hooks (MBA gate warm-up, auxiliary-loss warm-up, ...).
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, locations=["mpr_cma.engine"])
# Evaluation metrics (BaseMetric subclasses).
METRICS = Registry("metric", parent=MMENGINE_METRICS, locations=["mpr_cma.evaluation"])
