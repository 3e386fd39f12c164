"""Metrics, samplers, alignment, FID and plots for regularised autoencoders.

Pure functions on tensors/arrays; networks and weights are injected. Never imports ``sweep``.
"""
