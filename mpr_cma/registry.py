"""Registries of MPR-CMA, children of mmengine's root registries.

Configs refer to classes by `type='ClassName'`, looked up here (or in mmengine's parent
registries). Modules register themselves with `@MODELS.register_module()` etc.;
`locations` makes a registry import the modules that register into it the first time it is
used (the packages' __init__ import lazily, so the registering modules are named here).
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
# samplers registers LengthGroupedSampler into mmengine's DATA_SAMPLERS (built after the
# dataset, so importing it with the datasets is enough).
DATASETS = Registry("dataset", parent=MMENGINE_DATASETS, locations=[
    "mpr_cma.datasets.refcoco", "mpr_cma.datasets.refvos", "mpr_cma.datasets.vqa",
    "mpr_cma.datasets.samplers", "mpr_cma.datasets.repeat"])
# Functions referenced from configs, e.g. the collate function of the data loader.
FUNCTIONS = Registry("function", parent=MMENGINE_FUNCTIONS,
                     locations=["mpr_cma.datasets.collate"])
# Training hooks (MBA gate warm-up, auxiliary-loss warm-up, ...).
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, locations=["mpr_cma.engine"])
# Evaluation metrics (BaseMetric subclasses).
METRICS = Registry("metric", parent=MMENGINE_METRICS, locations=[
    "mpr_cma.evaluation.refvos_metric", "mpr_cma.evaluation.val_metrics"])
