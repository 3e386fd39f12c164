"""`esweep`: run sweeps, browse the leaderboard, open the MLflow UI."""

from __future__ import annotations

import functools
import json
import sys

import click
import yaml
from rich.console import Console

from evaluators import names
from sweep import leaderboard as lb
from sweep.shutdown import Interrupted, stop_on_signals
from sweep.tracking import Store, artifact_root_for, resolve_tracking_uri

# sweep.spec (the methods' registry, hence torch) is imported by the commands that read a spec, so the read-only
# ones (leaderboard, ui, compare, report) start in ~2 s instead of ~6 s

EXIT_BAD_INPUT = 2
EXIT_TRIALS_FAILED = 1

tracking_option = click.option(
    "--tracking-uri", default=None, help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else ./mlflow.db)."
)


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def stops_cleanly(command):
    """For a command that starts Ray or a server: SIGINT, SIGTERM and SIGHUP stop what it started (its own
    ``finally`` blocks, then the Ray it started) and exit 128 + the signal's number (130 for Ctrl-C)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        with stop_on_signals():  # still on while Ray shuts down: a further signal is ignored, not fatal
            try:
                return command(*args, **kwargs)
            except Interrupted as exc:
                if "ray" in sys.modules:
                    import ray

                    if ray.is_initialized():
                        ray.shutdown()  # a local Ray's processes end with it; on a cluster, only this driver goes
                click.echo(f"esweep: {exc}", err=True)
                sys.exit(exc.exit_code)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Sweeps and benchmarks for regularised autoencoders, on Ray, recorded in MLflow."""


@main.command()
@click.argument("spec", required=False, default="quickstart")
@tracking_option
@click.option("--storage-path", default=None, help="Ray results and checkpoints folder (default ./esweep-results).")
@click.option("--address", default=None, help="Attach to an existing Ray cluster ('auto' or ray://HOST:10001).")
@click.option("--num-cpus", type=int, default=None, help="CPUs for the local Ray started when no --address.")
@click.option("--verbose", is_flag=True, help="Show Ray's and the trials' logs.")
@stops_cleanly
def run(spec, tracking_uri, storage_path, address, num_cpus, verbose):
    """Run SPEC (a YAML file or a built-in name; default: quickstart) and print its leaderboard."""
    from sweep.spec import SpecError, load_spec

    try:
        parsed = load_spec(spec)
    except SpecError as exc:
        fail(str(exc))
    run_parsed(parsed, tracking_uri, storage_path, address, num_cpus, verbose)


@main.command()
@click.option("--method", required=True, help="A method that takes lambda (eae, vae, wae-mmd, rae-*, entropic).")
@click.option("--eccentricity", type=float, default=None, help="Target eccentricity, in [0, 10).")
@click.option("--reg", type=float, default=None, help="Target value of the regulariser loss (instead).")
@click.option("--dataset", default="mnist5k", show_default=True)
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option("--latent-dim", type=int, default=8, show_default=True)
@click.option("--epochs", type=int, default=12, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@tracking_option
@click.option("--storage-path", default=None, help="Ray results and checkpoints folder (default ./esweep-results).")
@click.option("--address", default=None, help="Attach to an existing Ray cluster ('auto' or ray://HOST:10001).")
@click.option("--num-cpus", type=int, default=None, help="CPUs for the local Ray started when no --address.")
@click.option("--verbose", is_flag=True, help="Show Ray's and the trials' logs.")
@stops_cleanly
def target(method, eccentricity, reg, dataset, seeds, latent_dim, epochs, lr, tracking_uri, storage_path, address,
           num_cpus, verbose):
    """One lambda-targeted run: lambda is regulated during training to hold the target (Li & Blair sec. 5)."""
    from sweep.spec import SpecError, parse_spec

    try:
        seed_list = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        fail(f"--seeds: expected comma-separated integers, got {seeds!r}")
    kind = {"eccentricity": [eccentricity]} if eccentricity is not None else {"reg": [reg]} if reg is not None else {}
    spec = {
        "name": f"target-{method}", "dataset": dataset, "methods": [method], "seeds": seed_list,
        "latent_dims": [latent_dim], "epochs": epochs, "lr": lr, "target": kind,
        "evaluation": {"fid_samples": 0, "crossrun": len(seed_list) > 1},
    }
    try:
        parsed = parse_spec(spec)
    except SpecError as exc:
        fail(str(exc).replace("target.eccentricity", "--eccentricity").replace("methods", "--method"))
    run_parsed(parsed, tracking_uri, storage_path, address, num_cpus, verbose)


def run_parsed(parsed, tracking_uri, storage_path, address, num_cpus, verbose) -> None:
    from sweep.cluster import ClusterConfigError
    from sweep.orchestrate import run_sweep  # Ray is imported only once the spec is known to be good

    console = Console()
    try:
        outcome = run_sweep(
            parsed, tracking_uri=tracking_uri, storage_path=storage_path, address=address,
            verbose=verbose, console=console, num_cpus=num_cpus,
        )
    except ClusterConfigError as exc:
        fail(str(exc))
    console.print(f"\nsweep {outcome.sweep_id} finished in {outcome.wall_time_s:.0f} s; leaderboard from MLflow:\n")
    _, board = lb.leaderboard(Store(outcome.tracking_uri), outcome.sweep_id)
    click.echo(lb.render(board, "table", lb.default_vs_best(board)))
    click.echo(f"\n{lb.LEGEND}")
    if outcome.n_failed:
        console.print(f"\n[red]{outcome.n_failed} trial(s) failed[/red]: " + "; ".join(
            f"{k}: {v}" for k, v in outcome.errors.items()))
    sys.exit(EXIT_TRIALS_FAILED if outcome.n_failed == len(outcome.statuses) else 0)


@main.command()
@click.argument("sweep", required=False)
@tracking_option
@click.option("--sort", "sort_metric", default=None, help="Sort by a metric, e.g. eval/recon_mse or eccentricity.")
@click.option("--desc", is_flag=True, help="Sort descending.")
@click.option("--format", "fmt", default="table", help=f"Output format: {', '.join(lb.FORMATS)}.")
@click.option("--fresh", is_flag=True, help="Read every configuration run, not the finished sweep's snapshot.")
@click.option(
    "--pareto", is_flag=False, flag_value="", default=None, metavar="[M1,M2[,M3]]",
    help="Mark each configuration 'front' or 'dominated by <configuration>' on 2 or 3 metrics with a direction "
    "(e.g. recon_mse,kid/standard; alone: recon MSE against the judged generation metric). Dominated: another is "
    "better on every metric by mean and significantly on one (Welch, Benjamini-Hochberg, 5%). Put SWEEP first.",
)
@click.option("--importance", "show_importance", is_flag=True,
              help="fANOVA parameter importance (method, log10 lambda, mu, d, target) for the judged metric and "
                   "eccentricity, from the trial runs.")
def leaderboard(sweep, tracking_uri, sort_metric, desc, fmt, fresh, pareto, show_importance):
    """Show a sweep's leaderboard (default: the newest sweep), read from MLflow alone."""
    if fmt not in lb.FORMATS:
        fail(f"--format: unknown format {fmt!r}; choose one of {', '.join(lb.FORMATS)}")
    if show_importance and fmt == "csv":
        fail("--importance: csv holds one table; use --format json (both), table or markdown")
    store = Store(resolve_tracking_uri(tracking_uri))
    found, notes = [], []
    try:
        sweep_id, board = lb.leaderboard(store, sweep, fresh=fresh)
        board = lb.sort_board(board, sort_metric, desc)
        if pareto is not None or show_importance:
            from sweep import tradeoff as to

            if pareto is not None:
                board = to.mark_pareto(board, to.pareto_metrics(board, pareto))
            if show_importance:
                from sweep.aggregate import trial_frame

                found, notes = to.importances(trial_frame(store, sweep_id), to.importance_metrics(board))
    except lb.LeaderboardError as exc:
        fail(str(exc))
    if fmt == "table":
        click.echo(f"sweep {sweep_id}")
    vs_best = None if sort_metric else lb.default_vs_best(board)
    if show_importance and fmt == "json":
        doc = {"configurations": lb.records(board), "importance": [vars(i) for i in found], "importance_notes": notes}
        click.echo(json.dumps(doc, indent=1, default=str))
        return
    click.echo(lb.render(board, fmt, vs_best))
    if fmt == "table":
        click.echo(f"\n{lb.LEGEND}" + (f"\n{to.LEGEND}" if pareto is not None else ""))
    if show_importance:
        shown = to.importance_display(found)
        if len(shown):
            click.echo("\nparameter importance:\n" + (lb.markdown_table(shown) if fmt == "markdown" else shown.to_string(index=False)))
            click.echo(f"\n{to.IMPORTANCE_LEGEND}")
        for note in notes:
            click.echo(f"importance not computed: {note}")


@main.command()
@click.argument("sweep", required=False)
@tracking_option
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="HTML file (default SWEEP.html).")
def report(sweep, tracking_uri, output):
    """Write one self-contained HTML report of SWEEP (default: the newest): leaderboard and every plot."""
    from pathlib import Path

    from sweep.report import build_report

    store = Store(resolve_tracking_uri(tracking_uri))
    try:
        sweep_id, board = lb.leaderboard(store, sweep)
    except lb.LeaderboardError as exc:
        fail(str(exc))
    sweep_id, path = build_report(store, sweep_id, Path(output or f"{sweep_id}.html"))
    click.echo(f"report for {sweep_id}: {path}")


@main.command()
def specs():
    """List the built-in specs."""
    from sweep.spec import builtin_specs

    for name, text in sorted(builtin_specs().items()):
        first = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")), "")
        click.echo(f"{name:16s} {first}")


@main.command()
@click.argument("table", required=False)
@click.option("--list", "list_tables", is_flag=True, help="List the papers' tables that can be reproduced.")
@click.option(
    "--scale", default="paper", show_default=True,
    help="paper: the paper's protocol on its real dataset (data_root), for a GPU cluster; smoke: the same grid on "
    "embedded data (mnist5k, digits) for a few epochs, a laptop-sized check that is not a reproduction.",
)
@tracking_option
@click.option("--storage-path", default=None, help="Ray results and checkpoints folder (default ./esweep-results).")
@click.option("--address", default=None, help="Attach to an existing Ray cluster ('auto' or ray://HOST:10001).")
@click.option("--num-cpus", type=int, default=None, help="CPUs for the local Ray started when no --address.")
@click.option("--data-root", default=None, help="Folder of the on-disk datasets (paper scale: mnist, celeba).")
@click.option("--seeds", default=None, help="Comma-separated seeds, replacing the scale's (a quicker look).")
@click.option("--epochs", type=int, default=None, help="Epochs per trial, replacing the scale's (a quicker look).")
@click.option("--fid-samples", type=int, default=None, help="Generated images per FID sampler, replacing the scale's.")
@click.option("--format", "fmt", default="table", help="Output format: table, markdown, json.")
@click.option("--sweep", "sweep_id", default=None, help="Show an existing reproduction sweep (e.g. after resume).")
@click.option("--dry-run", is_flag=True, help="Validate the table's sweep and print what would run; start nothing.")
@click.option("--verbose", is_flag=True, help="Show Ray's and the trials' logs.")
@stops_cleanly
def reproduce(table, list_tables, scale, tracking_uri, storage_path, address, num_cpus, data_root, seeds, epochs,
              fid_samples, fmt, sweep_id, dry_run, verbose):
    """Reproduce TABLE of the papers as one sweep and print our numbers beside the paper's, with its claims checked.

    It is an ordinary sweep underneath (MLflow runs, `esweep resume`, `esweep leaderboard`, `esweep report`)."""
    from sweep import reproduce as rp

    try:
        if list_tables:
            for row in rp.list_frame().to_dict("records"):
                click.echo(f"{row['table']:10s} {row['source']:14s} {row['rows']:2d} rows | paper: {row['paper']} | "
                           f"smoke: {row['smoke']}\n{'':10s} {row['title']}")
            return
        if not table:
            fail(f"TABLE: give a table, or --list; tables: {', '.join(rp.load_tables())}")
        paper_table = rp.get_table(table)
        rp.check_scale(scale)
        if fmt not in rp.FORMATS:
            raise rp.ReproduceError(f"--format: unknown format {fmt!r}; choose one of {', '.join(rp.FORMATS)}")
        if sweep_id:
            show_reproduction(Store(resolve_tracking_uri(tracking_uri)), sweep_id, paper_table.id, fmt)
            return
        try:
            seed_list = None if seeds is None else [int(x) for x in seeds.split(",") if x.strip()]
        except ValueError:
            raise rp.ReproduceError(f"--seeds: expected comma-separated integers, got {seeds!r}") from None
        spec = rp.build_spec(
            paper_table, scale, data_root=data_root, seeds=seed_list, epochs=epochs, fid_samples=fid_samples
        )
    except rp.ReproduceError as exc:
        fail(str(exc).replace("  seeds:", "  --seeds:").replace("  epochs:", "  --epochs:")
             .replace("  evaluation.fid_samples:", "  --fid-samples:"))
    given = (("seeds", seeds), ("epochs", epochs), ("fid_samples", fid_samples))
    overrides = " ".join(f"{k}={v}" for k, v in given if v is not None)
    from sweep.spec import expand

    click.echo(f"{paper_table.id}: {len(expand(spec))} trials on {spec.dataset}, {spec.epochs} epochs, seeds "
               f"{spec.seeds}: {rp.SCALE_LABELS[scale]}" + (f" (overrides: {overrides})" if overrides else ""))
    if dry_run:
        click.echo(yaml.safe_dump(spec.model_dump(mode="json", exclude_unset=True), sort_keys=False).rstrip())
        return
    if address is None and spec.resources.gpu > 0:
        import torch

        if torch.cuda.device_count() < spec.resources.gpu:
            fail(f"--scale {scale}: each trial asks for {spec.resources.gpu:g} GPU and this machine has "
                 f"{torch.cuda.device_count()}; run it on a GPU cluster (--address), or use --scale smoke")
    from sweep.cluster import ClusterConfigError
    from sweep.orchestrate import run_sweep

    console = Console()
    try:
        outcome = run_sweep(
            spec, tracking_uri=tracking_uri, storage_path=storage_path, address=address, verbose=verbose,
            console=console, num_cpus=num_cpus, tags=rp.sweep_tags(paper_table, scale, overrides),
        )
    except ClusterConfigError as exc:
        fail(str(exc))
    console.print(f"\nsweep {outcome.sweep_id} finished in {outcome.wall_time_s:.0f} s; side by side, from MLflow:\n")
    show_reproduction(Store(outcome.tracking_uri), outcome.sweep_id, paper_table.id, fmt)
    if outcome.n_failed:
        console.print(f"\n[red]{outcome.n_failed} trial(s) failed[/red]: " + "; ".join(
            f"{k}: {v}" for k, v in outcome.errors.items()))
    sys.exit(EXIT_TRIALS_FAILED if outcome.n_failed == len(outcome.statuses) else 0)


def show_reproduction(store: Store, sweep_id: str, table_id: str, fmt: str) -> None:
    from sweep import reproduce as rp

    try:
        rep = rp.reproduction(store, sweep_id)
    except (lb.LeaderboardError, rp.ReproduceError) as exc:
        fail(str(exc))
    if rep is None or rep.table.id != table_id:
        fail(f"--sweep: {sweep_id} is not a reproduction of {table_id}"
             + (f" (it reproduces {rep.table.id})" if rep is not None else ""))
    click.echo(rp.render(rep, fmt))


@main.command()
@click.argument("sweep", required=False)
@tracking_option
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--sort", "sort_metric", default=None,
    help="Sort the configuration runs by this metric (default: the one the leaderboard judges 'vs best' by).",
)
@click.option("--desc", is_flag=True, help="Sort descending (default: ascending, or descending where higher is better).")
@click.option("--open", "open_browser", is_flag=True, help="Open the sweep's link in a web browser once the UI answers.")
@click.option("--no-server", is_flag=True, help="Print the links only (the UI already runs on --port).")
@click.option("--front", is_flag=True,
              help="Only the configurations on the sweep's Pareto front (tag esweep.pareto = 'front', set when its "
                   "results are published).")
@stops_cleanly
def ui(sweep, tracking_uri, port, sort_metric, desc, open_browser, no_server, front):
    """Start the MLflow UI on the same store (127.0.0.1) and print a link to SWEEP's configuration runs (default:
    the newest sweep), sorted by a metric with its column shown. A tracking server URI is its own UI: no server."""
    import webbrowser

    from sweep import ui as mlflow_ui

    uri = resolve_tracking_uri(tracking_uri)
    remote = uri.startswith(("http://", "https://"))
    base = uri if remote else f"http://127.0.0.1:{port}"
    serving = not (remote or no_server)
    if serving and mlflow_ui.port_in_use(port):
        fail(f"--port: {port} is in use on 127.0.0.1; choose another --port, or --no-server if the UI already runs there")
    store = Store(uri)
    link = None
    if sweep or store.latest_sweep_run() is not None:
        try:
            sweep_id, board = lb.leaderboard(store, sweep)
            metric = lb.resolve_metric(board, sort_metric) if sort_metric else lb.default_vs_best(board)
        except lb.LeaderboardError as exc:
            fail(str(exc))
        ascending = not (desc or (metric is not None and lb.metric_mode(metric) == "max"))
        experiment_id = mlflow_ui.experiment_of(store, sweep_id)
        order = f"sorted by {metric} ({'ascending' if ascending else 'descending'})" if metric else "unsorted"
        which = "configuration runs on the Pareto front" if front else "configuration runs"
        if front and not store.find_runs(mlflow_ui.runs_filter(sweep_id, front=True), max_results=1):
            click.echo(f"(no configuration run of {sweep_id} carries {names.T_PARETO} = '{names.PARETO_FRONT}': its "
                       "results were published before fronts were, or it has no generation metric)", err=True)
        try:
            key = mlflow_ui.publish_view(store, experiment_id, sweep_id, metric, ascending, front)
            link = mlflow_ui.view_url(base, experiment_id, key)
            click.echo(f"sweep {sweep_id}: {which} {order}, its column shown (a saved view):\n  {link}")
        except Exception as exc:  # a read-only store: the plain link still filters and sorts
            click.echo(f"(saved view not written: {type(exc).__name__}: {exc})", err=True)
        plain = mlflow_ui.runs_url(base, experiment_id, mlflow_ui.facets(sweep_id, metric, ascending, front))
        click.echo(f"the same runs and order without the view's columns:\n  {plain}")
        link = link or plain
    link = link or base
    if not serving:
        if open_browser:
            webbrowser.open(link)
        return
    click.echo(f"MLflow UI on {base} for {uri} (Ctrl-C stops it)")
    cmd = mlflow_ui.server_command(sys.executable, uri, port, artifact_root_for(uri))
    sys.exit(mlflow_ui.serve(cmd, port, link if open_browser else None))


@main.command()
@click.argument("sweep_a")
@click.argument("sweep_b")
@tracking_option
@click.option(
    "--metric", "metrics", multiple=True,
    help="Compare only this metric (repeatable, or comma-separated; e.g. recon_mse, eval/fid/standard). Default: all.",
)
@click.option("--format", "fmt", default="table", help=f"Output format: {', '.join(lb.FORMATS)}.")
def compare(sweep_a, sweep_b, tracking_uri, metrics, fmt):
    """Compare two sweeps configuration by configuration (matched on method, target, lambda, mu, d, dataset):
    per metric B - A with Welch's t-test from the configuration runs' mean, std and n."""
    from sweep import compare as cmp

    if fmt not in lb.FORMATS:
        fail(f"--format: unknown format {fmt!r}; choose one of {', '.join(lb.FORMATS)}")
    store = Store(resolve_tracking_uri(tracking_uri))
    requested = [m.strip() for entry in metrics for m in entry.split(",") if m.strip()]
    try:
        id_a, board_a = lb.leaderboard(store, sweep_a)
        id_b, board_b = lb.leaderboard(store, sweep_b)
        comparison = cmp.compare_boards(board_a, board_b, requested)
    except (lb.LeaderboardError, cmp.CompareError) as exc:
        fail(str(exc))
    click.echo(cmp.render(comparison, id_a, id_b, fmt))


# --- models: sample, encode, promote, evaluate ---------------------------------------------------------------
model_argument = click.argument("model")
device_option = click.option("--device", default="cpu", show_default=True, help="Where the model runs: cpu or cuda.")


def _load(store: Store, model: str, device: str):
    """MODEL (a run id, a model URI, or SWEEP:best) loaded on ``device``; bad input exits 2."""
    from sweep.models import ModelError, load_model, resolve_ref

    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        fail(f"--device: {device!r} is not cpu, cuda or cuda:N")
    try:
        return load_model(resolve_ref(store, model), store.uri, device)
    except ModelError as exc:
        fail(str(exc))


@main.command()
@model_argument
@tracking_option
@click.option("--sampler", default="standard", show_default=True, help="A registered latent sampler.")
@click.option("--n", "n", type=click.IntRange(1, 4096), default=64, show_default=True, help="Images to sample.")
@click.option("--seed", type=int, default=0, show_default=True, help="The sampler's seed (same seed, same images).")
@click.option("--interpolate", nargs=2, default=None, metavar="A B",
              help="Instead of sampling: decode the line between the encodings of images A and B.")
@click.option("--steps", type=int, default=8, show_default=True, help="Images along the --interpolate line (>= 2).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default="grid.png", show_default=True,
              help="PNG grid to write.")
@device_option
def sample(model, tracking_uri, sampler, n, seed, interpolate, steps, output, device):
    """Decode samples of MODEL (a run id, a model URI, or SWEEP:best) into a PNG grid, or with --interpolate A B a
    latent interpolation between two images."""
    from pathlib import Path

    from evaluators import sampler_latent
    from evaluators.plots import image_grid_plot
    from evaluators.registry import UnknownNameError
    from sweep.models import ModelError, read_images

    try:
        sampler_latent.get(sampler)
    except UnknownNameError as exc:
        fail(f"--sampler: {exc}")
    store = Store(resolve_tracking_uri(tracking_uri))
    loaded = _load(store, model, device)
    try:
        if interpolate:
            a, b = (read_images(p, loaded.image_shape, f"--interpolate {p}") for p in interpolate)
            if len(a) != 1 or len(b) != 1:
                fail("--interpolate: A and B must be one image each (an image file, or an .npy of one image)")
            images = loaded.interpolate(a[0], b[0], steps)
            title = f"interpolation, {steps} steps"
        else:
            images = loaded.generate(n, sampler, seed)
            title = f"samples: {sampler} (seed {seed})"
    except (ModelError, sampler_latent.SamplerUnavailableError) as exc:
        fail(str(exc))
    Path(output).write_bytes(image_grid_plot(images.cpu(), ncols=min(8, len(images)), title=title))
    click.echo(f"{len(images)} images -> {output}")


@main.command()
@model_argument
@click.argument("images")
@tracking_option
@click.option("--output", "-o", type=click.Path(dir_okay=False), default="codes.npy", show_default=True,
              help="The latents, an (N, d) float32 .npy.")
@device_option
def encode(model, images, tracking_uri, output, device):
    """Encode IMAGES (a folder of images, or an .npy array (N, C, H, W)) with MODEL into an .npy of latents."""
    import numpy as np

    from sweep.models import ModelError, read_images

    store = Store(resolve_tracking_uri(tracking_uri))
    loaded = _load(store, model, device)
    try:
        codes = loaded.encode(read_images(images, loaded.image_shape))
    except ModelError as exc:
        fail(str(exc))
    np.save(output, codes.cpu().numpy().astype(np.float32))
    click.echo(f"{len(codes)} latents of dimension {loaded.latent_dim} -> {output}")


@main.command()
@click.argument("sweep")
@tracking_option
@click.option("--metric", default=None, help="Judge by this metric (default: the one the leaderboard judges by).")
@click.option("--name", default=None, help="Registered model name (default: esweep-<spec name>).")
def promote(sweep, tracking_uri, metric, name):
    """Register SWEEP's best model (the best configuration's best seed) in MLflow's model registry, the version
    tagged with the sweep, the configuration and its metric summary (mean ± ci95, n)."""
    from sweep.models import ModelError, promote_best

    store = Store(resolve_tracking_uri(tracking_uri))
    try:
        best, version = promote_best(store, sweep, metric, name)
    except ModelError as exc:
        fail(str(exc))
    click.echo(f"registered {version.name} version {version.version}: sweep {best.sweep_id}, configuration "
               f"{best.config_key}, {best.metric} {best.summary}; seed run {best.run_id}")


@main.command()
@click.argument("sweep")
@tracking_option
@click.option("--metric", "metrics", multiple=True,
              help="What to evaluate (repeatable, or comma-separated): fid, fid_inf, knn. Default: fid.")
@click.option("--fid-samples", type=int, default=1000, show_default=True, help="Generated images per sampler.")
@click.option("--fid-reference-size", type=int, default=None, help="Test images for the FID reference (default: the sweep's).")
@click.option("--samplers", default=None, help="Comma-separated latent samplers (default: the sweep's).")
@click.option("--address", default=None, help="Attach to an existing Ray cluster ('auto' or ray://HOST:10001).")
@click.option("--num-cpus", type=int, default=None, help="CPUs for the local Ray started when no --address.")
@click.option("--verbose", is_flag=True, help="Show Ray's and the tasks' logs.")
def evaluate(sweep, tracking_uri, metrics, fid_samples, fid_reference_size, samplers, address, num_cpus, verbose):
    """Re-evaluate SWEEP's logged models without retraining (Ray tasks), writing to the same seed runs, then
    re-summarise its configurations and leaderboard. Models already evaluated with the same settings are skipped."""
    from sweep.cluster import ClusterConfigError
    from sweep.evaluate import EvaluateError, evaluate_sweep

    store = Store(resolve_tracking_uri(tracking_uri))
    split = [m.strip() for entry in metrics for m in entry.split(",") if m.strip()]
    sampler_list = [s.strip() for s in (samplers or "").split(",") if s.strip()]
    try:
        outcome = evaluate_sweep(store, sweep, metrics=split, samplers=sampler_list, fid_samples=fid_samples,
                                 fid_reference_size=fid_reference_size, address=address, num_cpus=num_cpus,
                                 verbose=verbose)
    except (EvaluateError, ClusterConfigError) as exc:
        fail(str(exc))
    s = outcome.settings
    click.echo(f"sweep {outcome.sweep_id}: {len(outcome.evaluated)} model(s) evaluated, {len(outcome.skipped)} "
               f"already evaluated with these settings ({s.digest}: {', '.join(s.metrics)}, samplers "
               f"{', '.join(s.samplers)}, {s.fid_samples} samples) in {outcome.wall_time_s:.0f} s")
    _, board = lb.leaderboard(store, outcome.sweep_id)
    click.echo(lb.render(board, "table", lb.default_vs_best(board)))


# --- cluster: jobs, resume, cleanup -----------------------------------------------------------------------
jobs_address_option = click.option(
    "--address", required=True, envvar="RAY_API_SERVER_ADDRESS",
    help="Ray Jobs API (dashboard) address, e.g. http://127.0.0.1:8265 (env RAY_API_SERVER_ADDRESS).",
)


@main.command()
@click.argument("spec")
@jobs_address_option
@tracking_option
@click.option("--storage-path", default=None, help="Results folder or s3:// URI, as the cluster sees it.")
def submit(spec, address, tracking_uri, storage_path):
    """Submit SPEC to a Ray cluster as a Ray Job (code and spec travel with it); print the job id."""
    from sweep import jobs
    from sweep.spec import SpecError

    try:
        job_id = jobs.submit(address, spec, tracking_uri, storage_path)
    except (SpecError, jobs.JobsError) as exc:
        fail(str(exc))
    click.echo(job_id)


@main.command(name="jobs")
@jobs_address_option
def list_jobs(address):
    """List the cluster's Ray Jobs, newest first."""
    from sweep import jobs

    try:
        listed = jobs.list_jobs(address)
    except jobs.JobsError as exc:
        fail(str(exc))
    for job_id, status, entry in listed:
        click.echo(f"{job_id:32s} {status:10s} {entry}")


@main.command()
@click.argument("job_id")
@jobs_address_option
@click.option("--follow", "-f", is_flag=True, help="Stream the logs until the job ends.")
def logs(job_id, address, follow):
    """Print a Ray Job's logs."""
    from sweep import jobs

    try:
        if follow:
            jobs.follow_logs(address, job_id, lambda chunk: click.echo(chunk, nl=False))
        else:
            click.echo(jobs.job_logs(address, job_id), nl=False)
    except jobs.JobsError as exc:
        fail(str(exc))


@main.command()
@click.argument("job_id")
@jobs_address_option
def stop(job_id, address):
    """Stop a Ray Job (its trials' MLflow runs are closed by `esweep cleanup`)."""
    from sweep import jobs

    try:
        stopping = jobs.stop_job(address, job_id)
    except jobs.JobsError as exc:
        fail(str(exc))
    click.echo("stopping" if stopping else "already ended")


@main.command()
@click.argument("sweep")
@tracking_option
@click.option("--address", default=None, help="Attach to an existing Ray cluster ('auto' or ray://HOST:10001).")
@click.option("--num-cpus", type=int, default=None, help="CPUs for the local Ray started when no --address.")
@click.option("--verbose", is_flag=True, help="Show Ray's and the trials' logs.")
@stops_cleanly
def resume(sweep, tracking_uri, address, num_cpus, verbose):
    """Continue SWEEP after its driver died: errored and interrupted trials resume from checkpoints."""
    from sweep.cluster import ClusterConfigError
    from sweep.resume import ResumeError, print_outcome, resume_sweep

    store, console = Store(resolve_tracking_uri(tracking_uri)), Console()
    try:
        outcome = resume_sweep(store, sweep, address=address, verbose=verbose, num_cpus=num_cpus, console=console)
    except (ResumeError, ClusterConfigError) as exc:
        fail(str(exc))
    print_outcome(outcome, console)
    sys.exit(EXIT_TRIALS_FAILED if outcome.n_failed == len(outcome.statuses) else 0)


@main.command()
@click.argument("sweep")
@tracking_option
@click.option(
    "--stale-after", type=click.FloatRange(min=0), default=None,
    help="Seconds without a metric before a RUNNING run counts as orphaned "
    "(default: 0 once the sweep's driver has finished, else 600).",
)
def cleanup(sweep, tracking_uri, stale_after):
    """Mark SWEEP's trial runs still RUNNING without a live trial as KILLED, with the reason as a tag."""
    from sweep.cleanup import DEFAULT_STALE_AFTER_S, close_orphans

    store = Store(resolve_tracking_uri(tracking_uri))
    run = store.sweep_run(sweep)
    if run is None:
        fail(f"no sweep {sweep!r} in {store.uri}")
    if stale_after is None:
        stale_after = DEFAULT_STALE_AFTER_S if run.info.status == "RUNNING" else 0.0
    closed = close_orphans(store, run.data.tags[names.T_SWEEP_ID], stale_after)
    click.echo(f"closed {len(closed)} orphaned run(s)" + "".join(f"\n  {k}" for k in closed))


if __name__ == "__main__":  # python -m sweep.cli, as the installed `esweep` script
    main()
