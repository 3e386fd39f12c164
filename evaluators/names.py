"""Every MLflow metric, param and tag key, in one place, namespaced so keys never drift."""

# per-epoch training metrics (step = epoch)
TRAIN_LOSS = "train/loss"
TRAIN_RECON = "train/recon"
TRAIN_REG = "train/reg"
TRAIN_EPOCH_TIME = "train/epoch_time_s"
TRAIN_IMAGES_PER_S = "train/images_per_s"

# evaluation on the test set
EVAL_ECCENTRICITY = "eval/eccentricity"
EVAL_RECON_MSE = "eval/recon_mse"
EVAL_TRACE = "eval/cov_trace"
EVAL_WALL_TIME = "eval/wall_time_s"

# parameters
P_METHOD = "method"
P_LAMBDA = "lambda"
P_MU = "mu"
P_LATENT_DIM = "d"
P_SEED = "seed"
P_DATASET = "dataset"
P_EPOCHS = "epochs"
P_ARCH = "arch"
P_BATCH_SIZE = "batch_size"
P_LR = "lr"
P_WEIGHT_DECAY = "weight_decay"

# tags
T_SWEEP_ID = "esweep.sweep_id"
T_TRIAL_KEY = "esweep.trial_key"
T_TRIAL_ID = "esweep.trial_id"
T_GIT_COMMIT = "esweep.git_commit"
T_VERSION = "esweep.version"
T_ROLE = "esweep.role"
T_FAILURE = "esweep.failure"
T_STATUS = "esweep.status"

ROLE_SWEEP = "sweep"
ROLE_TRIAL = "trial"

ARTIFACT_SPECTRUM = "spectrum.json"
