"""Any code dataset in, at any scale: one per-batch transform run by ``datasets.map`` or Ray Data.

* :mod:`procure_trl.perturb.scale.formats`: where the code is in a row (TRL's formats, or named columns);
* :mod:`procure_trl.perturb.scale.transform`: :class:`CounterfactualBatchTransform`, the per-batch function;
* :mod:`procure_trl.perturb.scale.run`: :func:`perturb_dataset`, the engines, Parquet output;
* :mod:`procure_trl.perturb.scale.card`: the counts and the dataset card.
"""

from procure_trl.perturb.scale.config import DatasetPerturbConfig
from procure_trl.perturb.scale.formats import DatasetFormat, detect_format
from procure_trl.perturb.scale.run import perturb_dataset
from procure_trl.perturb.scale.transform import CounterfactualBatchTransform

__all__ = ["CounterfactualBatchTransform", "DatasetFormat", "DatasetPerturbConfig", "detect_format", "perturb_dataset"]
