"""CPU/GPU benchmarks of the training loop, eccentric loss, sweep overhead, FID and packed trials (issue 7).

``python -m benchmarks`` runs them all; ``--smoke`` is the tiny version CI runs. Each module also runs alone.
"""
