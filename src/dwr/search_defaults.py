"""The DWR search's defaults, chosen on a validation split (docs/method.md, section 5).

Plain constants (no imports), so the CLI and ``benchmarks/paper_table.py`` read them without
loading PyTorch. The protocol is the DWR authors' (``Pruning/clustest-cifar.py``): a fully
trained pre-training network, each stage's binary conv output before BN, 400 images, DBSCAN
``min_samples`` 5 at a fixed eps 0.021, the widths then scaled to the budget by one factor.
"""

#: Reshaping factor of the network that is pre-trained and pruned (depth / s, width * sqrt(s)).
FACTOR = 3.0
#: Its widths are widened by this before pre-training.
OVERPARAM = 1.5
#: Pre-training epochs as a fraction of the full training's (1: fully trained).
PRETRAIN_FRACTION = 1.0
#: Training images whose mean feature maps are clustered.
SAMPLES = 400
#: ``"stage"`` (stage outputs) or ``"conv"`` (each stage's last binary conv, before BN).
CLUSTER_ON = "conv"
#: DBSCAN ``min_samples``.
MIN_SAMPLES = 5
#: DBSCAN eps (cosine distance); ``None`` bisects eps to the budget.
EPS: float | None = 0.021
#: ``"global"``: one eps for every stage; ``"stage"``: eps in units of each stage's k-distance.
EPS_SCALE = "global"
