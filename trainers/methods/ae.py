"""Plain autoencoder: reconstruction plus weight decay only (the AE row of Li & Blair Table 1); no lambda."""

from trainers.methods import register
from trainers.methods.base import AutoencoderMethod


@register("ae")
class AE(AutoencoderMethod):
    paper = "Li & Blair 2022, Table 1 baseline (weight decay only)"
    takes_lambda = False
