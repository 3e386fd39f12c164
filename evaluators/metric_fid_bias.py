"""When a generation metric is small-sample: an FID from fewer generated images than Inception's features (the sample
covariance is singular and FID's ~1/n bias is large), a k-NN manifold metric from fewer than 500 points a side. No
torch here: the leaderboard labels its columns with it."""

FID_FEATURE_DIM = 2048  # Inception pool3 features


def is_small_sample(n: int, dim: int = FID_FEATURE_DIM) -> bool:
    """Fewer samples than features: the sample covariance is singular and FID's ~1/n bias is large."""
    return n < dim


PRDC_MIN_SAMPLES = 500  # per side: fewer points make the k-NN manifolds of precision/recall/density/coverage coarse


def is_small_knn_sample(n: int) -> bool:
    """Fewer than PRDC_MIN_SAMPLES points on the smaller side of a k-NN manifold metric."""
    return n < PRDC_MIN_SAMPLES
