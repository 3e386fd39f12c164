"""When an FID is small-sample: from fewer generated images than Inception's features, the sample covariance is
singular and FID's ~1/n bias is large. No torch here: the leaderboard labels its columns with it."""

FID_FEATURE_DIM = 2048  # Inception pool3 features


def is_small_sample(n: int, dim: int = FID_FEATURE_DIM) -> bool:
    """Fewer samples than features: the sample covariance is singular and FID's ~1/n bias is large."""
    return n < dim
