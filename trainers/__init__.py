"""Methods, networks, datasets, the training loop and lambda control. Knows nothing of Ray or MLflow."""
