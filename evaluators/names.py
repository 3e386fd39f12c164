"""Every MLflow metric, param and tag key, in one place, namespaced so keys never drift."""

# per-epoch training metrics (step = epoch)
TRAIN_LOSS = "train/loss"
TRAIN_RECON = "train/recon"
TRAIN_REG = "train/reg"
TRAIN_EPOCH_TIME = "train/epoch_time_s"
TRAIN_IMAGES_PER_S = "train/images_per_s"

# lambda control (Li & Blair sec. 5): per epoch the current lambda and running estimates, at the end the outcome
CONTROL_LAMBDA = "control/lambda"
CONTROL_ECC_ESTIMATE = "control/ecc_estimate"
CONTROL_REG_ESTIMATE = "control/reg_estimate"
CONTROL_ECC_PROBE = "control/ecc_probe"  # eval-mode eccentricity of training images, calibrating the estimate
CONTROL_FINAL_LAMBDA = "control/final_lambda"
CONTROL_ABS_ERROR = "control/abs_error"

# evaluation on the test set
EVAL_ECCENTRICITY = "eval/eccentricity"
# the same with the finite-sample spread of the eigenvalues removed (about sqrt(d / n) from n codes): what targets judge
EVAL_ECCENTRICITY_DEBIASED = "eval/eccentricity_debiased"
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
P_RECON = "recon"  # the reconstruction term's units that lambda is weighed against: mean | sum | batch-sum
P_RECON_SCALE = "recon_scale"
P_BATCH_SIZE = "batch_size"
P_LR = "lr"
P_WEIGHT_DECAY = "weight_decay"
P_TARGET = "target"
P_SEARCH_METRIC = "search_metric"
P_SEARCH_MODE = "search_mode"

# tags
T_SWEEP_ID = "esweep.sweep_id"
T_TRIAL_KEY = "esweep.trial_key"
T_TRIAL_ID = "esweep.trial_id"
T_GIT_COMMIT = "esweep.git_commit"
T_VERSION = "esweep.version"
T_ROLE = "esweep.role"
T_FAILURE = "esweep.failure"
T_STATUS = "esweep.status"

# packed trials (sweep `pack: K`): a run trained as one of K lambda/seed variants in one vmapped Tune trial
T_PACK_SIZE = "esweep.pack_size"  # how many variants trained together (absent: trained on its own)
T_PACK_KEY = "esweep.pack_key"  # the pack's Tune trial name, shared by its members
# Tune results of a pack trial (not MLflow keys): its members and how many of them diverged
PACK_MEMBERS = "pack/members"
PACK_DIVERGED = "pack/diverged"

ROLE_SWEEP = "sweep"
ROLE_CONFIG = "config"  # one run per configuration (method, lambda, mu, d, target), nested under the sweep run
ROLE_TRIAL = "trial"  # one run per seed, nested under its configuration run
T_CONFIG_KEY = "esweep.config_key"
T_FLAGS = "esweep.flags"  # a configuration's seeds that did not converge or are outliers, in words
# MLflow's own marker: a model-training experiment opens on its runs table, not on the GenAI overview
T_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_TRAINING = "custom_model_development"
T_DESCRIPTION = "mlflow.note.content"  # what the MLflow UI shows as a run's description

# a configuration run's seed counts (beside its summaries M, M_std, M_ci95, M_n of every trial metric M)
SEEDS_PREFIX = "seeds/"
SEEDS_FINISHED = "seeds/finished"
SEEDS_FAILED = "seeds/failed"
SEEDS_RUNNING = "seeds/running"
SEEDS_UNCONVERGED = "seeds/unconverged"
SEEDS_OUTLIERS = "seeds/outliers"

ARTIFACT_SPECTRUM = "spectrum.json"
ARTIFACT_ENCODINGS = "encodings.npz"
ARTIFACT_PLOT_SEARCH_HISTORY = "plots/search_history.png"
ARTIFACT_CONTROL_TRAJECTORY = "control/trajectory.json"
ARTIFACT_PLOT_CONTROL_LAMBDA = "plots/control_lambda.png"
ARTIFACT_PLOT_CONTROL_ECC = "plots/control_eccentricity.png"

# --- evaluators (issue 4) ---------------------------------------------------------------------------------
# FID of decoded samples against the test set, one metric per latent sampler ("eval/fid/standard", ...)
EVAL_FID_PREFIX = "eval/fid/"
# KNN error (percent) on the latents vs labelled subset size, Table 2 ("eval/knn_error_pct/100")
EVAL_KNN_ERROR_PREFIX = "eval/knn_error_pct/"
EVAL_KNN_ERROR_STD_PREFIX = "eval/knn_error_pct_std/"
# attribute datasets, Table 3: error (percent) averaged over attributes
EVAL_ATTR_DT1_ERROR = "eval/attr/dt1_error_pct"
EVAL_ATTR_DT8_ERROR = "eval/attr/dt8_error_pct"
# the trees on principal-component coordinates (sec. 4.1): axis-aligned splits on raw latent coordinates depend on an
# arbitrary rotation, which the rotation-invariant eccentric loss leaves free; KNN is rotation-invariant already
EVAL_ATTR_DT1_PC_ERROR = "eval/attr/dt1_pc_error_pct"
EVAL_ATTR_DT8_PC_ERROR = "eval/attr/dt8_pc_error_pct"
EVAL_ATTR_KNN20_ERROR = "eval/attr/knn20_error_pct"
EVAL_ATTR_MAJORITY_ERROR = "eval/attr/majority_error_pct"

# cross-run analysis over seeds of one configuration (sec. 4.2, Table 1; first version's Table 2)
XRUN_ANGLE_RAW = "xrun/angle_raw_deg"
XRUN_ANGLE_RAW_STD = "xrun/angle_raw_deg_std"
XRUN_ANGLE_ALIGNED = "xrun/angle_aligned_deg"
XRUN_ANGLE_ALIGNED_STD = "xrun/angle_aligned_deg_std"
XRUN_RMS_RAW = "xrun/rms_distance_raw"
XRUN_RMS_RAW_STD = "xrun/rms_distance_raw_std"
XRUN_RMS_ALIGNED = "xrun/rms_distance_aligned"
XRUN_RMS_ALIGNED_STD = "xrun/rms_distance_aligned_std"
XRUN_COSINE_RAW = "xrun/cosine_raw"
XRUN_COSINE_RAW_STD = "xrun/cosine_raw_std"
XRUN_COSINE_ALIGNED = "xrun/cosine_aligned"
XRUN_COSINE_ALIGNED_STD = "xrun/cosine_aligned_std"
XRUN_PAIRS = "xrun/pairs"

# evaluation parameters
P_FID_SAMPLES = "fid_samples"
P_FID_REFERENCE_SIZE = "fid_reference_size"
P_FID_EXTRACTOR = "fid_extractor"
P_FID_SKIPPED = "fid_skipped_samplers"
P_SAMPLERS = "samplers"

# evaluation artifacts (PNG plots and the HTML report)
ARTIFACT_PLOT_SPECTRUM = "plots/spectrum.png"
ARTIFACT_PLOT_LATENT_2D = "plots/latent_2d.png"
ARTIFACT_PLOT_EIGEN_IMAGES = "plots/eigen_images.png"
ARTIFACT_PLOT_COMPONENT_GRID = "plots/component_grid.png"
ARTIFACT_PLOT_SAMPLES_PREFIX = "plots/samples_"
ARTIFACT_PLOT_RECONSTRUCTIONS = "plots/reconstructions.png"
ARTIFACT_PLOT_XRUN_CORRELATION = "plots/xrun_correlation.png"
ARTIFACT_PLOT_ECC_VS_FID = "plots/eccentricity_vs_fid.png"
ARTIFACT_REPORT = "report.html"
ARTIFACT_TABLE_KNN = "tables/knn_vs_subset_size.csv"
ARTIFACT_TABLE_ATTRIBUTES = "tables/attribute_errors.csv"
ARTIFACT_TABLE_COMPONENT_GAIN = "tables/attribute_component_gain.csv"


def eval_fid(sampler: str) -> str:
    return f"{EVAL_FID_PREFIX}{sampler}"


def eval_knn_error(size: int | str) -> str:
    return f"{EVAL_KNN_ERROR_PREFIX}{size}"


def eval_knn_error_std(size: int | str) -> str:
    return f"{EVAL_KNN_ERROR_STD_PREFIX}{size}"


def artifact_samples(sampler: str) -> str:
    return f"{ARTIFACT_PLOT_SAMPLES_PREFIX}{sampler}.png"

# the environment a run computed in (tags, set when the run is created): two runs with equal values under every
# ENV_TAGS key ran the same python and package versions on the same kind of device
T_ENV_PYTHON = "esweep.env.python"
T_ENV_TORCH = "esweep.env.torch"
T_ENV_TORCHVISION = "esweep.env.torchvision"
T_ENV_RAY = "esweep.env.ray"
T_ENV_MLFLOW = "esweep.env.mlflow"
T_ENV_TORCH_FIDELITY = "esweep.env.torch_fidelity"
T_ENV_NUMPY = "esweep.env.numpy"
T_ENV_SCIKIT_LEARN = "esweep.env.scikit_learn"
T_ENV_DEVICE = "esweep.env.device"  # "cpu: <CPU model>" or "cuda: <GPU name>": what the run trained on
T_ENV_CUDA = "esweep.env.cuda"  # CUDA version of a run on a GPU, else "none"
ENV_TAGS = (
    T_ENV_PYTHON, T_ENV_TORCH, T_ENV_TORCHVISION, T_ENV_RAY, T_ENV_MLFLOW, T_ENV_TORCH_FIDELITY, T_ENV_NUMPY,
    T_ENV_SCIKIT_LEARN, T_ENV_DEVICE, T_ENV_CUDA,
)  # fmt: skip

# --- numbers a researcher can trust (issue 11) --------------------------------------------------------------------
# per sampler, from the same Inception features as its FID: KID (Bińkowski et al. 2018) mean and std over subsets,
# the number of generated samples FID saw (below the feature dimension it is small-sample) and FID-infinity
EVAL_KID_PREFIX = "eval/kid/"
EVAL_KID_STD_PREFIX = "eval/kid_std/"
EVAL_FID_N_PREFIX = "eval/fid_n/"
EVAL_FID_INF_PREFIX = "eval/fid_inf/"
P_KID_SUBSETS = "kid_subsets"
P_KID_SUBSET_SIZE = "kid_subset_size"
ARTIFACT_TABLE_FID_INFINITY = "tables/fid_infinity.csv"  # sampler, subset size, FID: the points of the 1/n fit
# once, at the end of training: relative fall of the epoch loss over the last fifth of the epochs, and 1.0 when it
# fell by at most the threshold (converged) or 0.0 (still falling); both absent for runs too short to judge
TRAIN_REL_IMPROVEMENT_TAIL = "train/rel_improvement_tail"
TRAIN_CONVERGED = "train/converged"


def eval_kid(sampler: str) -> str:
    return f"{EVAL_KID_PREFIX}{sampler}"


def eval_kid_std(sampler: str) -> str:
    return f"{EVAL_KID_STD_PREFIX}{sampler}"


def eval_fid_n(sampler: str) -> str:
    return f"{EVAL_FID_N_PREFIX}{sampler}"


def eval_fid_inf(sampler: str) -> str:
    return f"{EVAL_FID_INF_PREFIX}{sampler}"

# --- the sweep run as the place to start (issue 12) ----------------------------------------------------------------
# what `esweep report` and `esweep leaderboard` give, refreshed on the sweep run each time the sweep (or its resume)
# finishes: the HTML report, the leaderboard as an MLflow table (JSON in pandas' split layout, shown as a table by
# the UI's artifact viewer) and as CSV with every summary column
ARTIFACT_SWEEP_REPORT = "report/report.html"
ARTIFACT_SPEC = "spec.yaml"  # the sweep spec as run: what `esweep resume` and the reproduction settings line read
ARTIFACT_LEADERBOARD_TABLE = "leaderboard.json"
ARTIFACT_LEADERBOARD_CSV = "leaderboard.csv"
# the configuration runs' frame as `esweep leaderboard` read it when the sweep finished, with the stamp it was saved
# under: a finished sweep whose tag still carries that stamp is read from this one file instead of every configuration
# run (10,000 trials from a server: seconds, not half a minute); re-summarising the sweep sets the tag to "stale"
ARTIFACT_BOARD_SNAPSHOT = "leaderboard/board_snapshot.json"
T_BOARD_STAMP = "esweep.board.stamp"
BOARD_STALE = "stale"
T_LOGGED_ARTIFACTS = "mlflow.loggedArtifacts"  # MLflow's own list of a run's table artifacts, as log_table keeps it

# --- the papers' tables as sweeps (issue 13, `esweep reproduce`) ---------------------------------------------------
# tags of a sweep run that reproduces a paper table: which table, at which scale ("paper" or "smoke"), and the
# command-line overrides (seeds, epochs) it ran with, if any; the side-by-side comparison, refreshed with the report
T_REPRODUCE_TABLE = "esweep.reproduce.table"
T_REPRODUCE_SCALE = "esweep.reproduce.scale"
T_REPRODUCE_OVERRIDES = "esweep.reproduce.overrides"
ARTIFACT_REPRODUCTION = "reproduce/side_by_side.json"

# --- the trade-off, seen (issue 22) ---------------------------------------------------------------------------------
# a configuration run's place on its sweep's Pareto front (set each time the sweep's results are published): on the
# front, dominated (another configuration is better on every chosen metric and significantly on one), or unplaced
# (it lacks a chosen metric, e.g. every seed failed)
T_PARETO = "esweep.pareto"
PARETO_FRONT = "front"
PARETO_DOMINATED = "dominated"
PARETO_UNPLACED = "unplaced"
ARTIFACT_PARETO = "pareto.json"  # the front's metrics, test and every configuration's mark
ARTIFACT_IMPORTANCE = "importance.json"  # fANOVA parameter importance per judged metric
ARTIFACT_PLOT_PARETO = "plots/pareto.png"
ARTIFACT_PLOT_IMPORTANCE = "plots/importance.png"
ARTIFACT_PLOT_PARALLEL = "plots/parallel_coordinates.png"
# --- fidelity, diversity and memorisation apart (issue 21) ---------------------------------------------------------
# per sampler, from the same Inception features as its FID: precision, recall, F-score (Kynkäänniemi et al. 2019,
# k = 3) and density, coverage (Naeem et al. 2020, k = 5); with the smaller side's sample count, below which the k-NN
# manifolds are small-sample
EVAL_PRECISION_PREFIX = "eval/precision/"
EVAL_RECALL_PREFIX = "eval/recall/"
EVAL_F_SCORE_PREFIX = "eval/f_score/"
EVAL_DENSITY_PREFIX = "eval/density/"
EVAL_COVERAGE_PREFIX = "eval/coverage/"
EVAL_PRDC_N_PREFIX = "eval/prdc_n/"
PRDC_PREFIXES = (
    EVAL_PRECISION_PREFIX, EVAL_RECALL_PREFIX, EVAL_F_SCORE_PREFIX, EVAL_DENSITY_PREFIX, EVAL_COVERAGE_PREFIX,
)  # fmt: skip
P_PRC_NEIGHBORHOOD = "prc_k"
P_DC_NEIGHBORHOOD = "dc_k"
# per sampler, memorisation (Meehan et al. 2020): the C_T data-copying statistic (a cell-mass-weighted Mann-Whitney
# z-score; well below 0: samples nearer the training set than held-out data are) and the fraction of generated
# samples nearer a training image than that image's closest test image
EVAL_CT_PREFIX = "eval/ct/"
EVAL_COPY_FRACTION_PREFIX = "eval/copy_fraction/"
P_CT_CELLS = "ct_cells"
# per sampler, seconds to draw its codes: for the ex-post samplers (flow, two-stage) mostly the fit to the training codes
EVAL_SAMPLER_TIME_PREFIX = "eval/sampler_time_s/"
# provenance of every generation metric (FID, KID, precision/recall, density/coverage, C_T), beside P_FID_EXTRACTOR,
# P_FID_REFERENCE_SIZE and each sampler's eval/fid_n: two runs' generation metrics compare only where these agree
P_GEN_EXTRACTOR_WEIGHTS = "gen_extractor_weights_sha256"
P_GEN_PREPROCESSING = "gen_extractor_preprocessing"  # the extractor's resize/interpolation and input scaling
P_GEN_INPUT = "gen_input"  # how generated and reference images become the extractor's input (range, dtype)
P_FID_REFERENCE_SPLIT = "fid_reference"  # test (Li & Blair) or train (Geng et al.)
P_FID_REFERENCE_STATS = "fid_reference_stats_sha256"  # hash of the cached reference statistics
PROVENANCE_PARAMS = (
    P_FID_EXTRACTOR, P_GEN_EXTRACTOR_WEIGHTS, P_GEN_PREPROCESSING, P_GEN_INPUT, P_FID_REFERENCE_SPLIT,
    P_FID_REFERENCE_SIZE, P_FID_REFERENCE_STATS, P_FID_SAMPLES,
)  # fmt: skip
# a configuration run's provenance of its seeds' generation metrics (JSON of PROVENANCE_PARAMS; "mixed: ..." when
# its seeds disagree)
T_GEN_PROVENANCE = "esweep.gen_provenance"
P_CT_TRAIN_SIZE = "ct_train_size"


def eval_precision(sampler: str) -> str:
    return f"{EVAL_PRECISION_PREFIX}{sampler}"


def eval_recall(sampler: str) -> str:
    return f"{EVAL_RECALL_PREFIX}{sampler}"


def eval_f_score(sampler: str) -> str:
    return f"{EVAL_F_SCORE_PREFIX}{sampler}"


def eval_density(sampler: str) -> str:
    return f"{EVAL_DENSITY_PREFIX}{sampler}"


def eval_coverage(sampler: str) -> str:
    return f"{EVAL_COVERAGE_PREFIX}{sampler}"


def eval_prdc_n(sampler: str) -> str:
    return f"{EVAL_PRDC_N_PREFIX}{sampler}"


def in_feature_space(key: str, extractor: str) -> str:
    """A generation metric or param of a further feature space: 'eval/fid/standard' -> 'eval/<extractor>/fid/standard',
    'fid_reference' -> '<extractor>.fid_reference'."""
    return key.replace("eval/", f"eval/{extractor}/", 1) if key.startswith("eval/") else f"{extractor}.{key}"


def eval_sampler_time(sampler: str) -> str:
    return f"{EVAL_SAMPLER_TIME_PREFIX}{sampler}"


def eval_ct(sampler: str) -> str:
    return f"{EVAL_CT_PREFIX}{sampler}"


def eval_copy_fraction(sampler: str) -> str:
    return f"{EVAL_COPY_FRACTION_PREFIX}{sampler}"


# --- models as first-class (issue 20) ------------------------------------------------------------------------------
# each seed run's trained model is an MLflow logged model (name MODEL_NAME, linked to the run and to its eval/*
# metrics); the run carries its id, so `load_model(run_id)` finds it with one read
MODEL_NAME = "model"
MODEL_TYPE = "autoencoder"
T_MODEL_ID = "esweep.model_id"
# `esweep evaluate`: what the last re-evaluation of a seed run used (JSON: n per sampler, reference size, extractor,
# samplers, settings hash, when), and one marker per settings hash already evaluated, so a rerun skips it
T_EVAL_PROVENANCE = "esweep.eval.provenance"
T_EVAL_DONE_PREFIX = "esweep.eval.done/"
# `esweep promote`: tags of a registered model version, beside T_SWEEP_ID and T_CONFIG_KEY (the summary is
# "mean ± ci95 (n = N)" over the configuration's seeds)
T_PROMOTED_METRIC = "esweep.metric"
T_PROMOTED_SUMMARY = "esweep.metric_summary"
T_PROMOTED_RUN = "esweep.run_id"
