"""`esweep ui`'s links into MLflow 3.17's runs page: the URL facets (searchFilter, orderByKey, orderByAsc) and the
saved view (experiment tag mlflow.sharedViewState.<key>, opened by viewStateShareKey) that also shows the metric's
column. The page and its parameter names are MLflow's (server/js: the runs page's search facets and saved views)."""

import json
import socket
import urllib.parse

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from mlflow_planted import plant_sweep, summary

from evaluators import names
from sweep import ui
from sweep.cli import main
from sweep.tracking import Store, config_runs_filter

RECON = names.EVAL_RECON_MSE
COSINE = names.XRUN_COSINE_ALIGNED


def split(url: str) -> tuple[str, str, dict[str, str]]:
    """(server, hash route, query) of a link into the hash-routed UI."""
    server, fragment = url.split("#", 1)
    route, query = fragment.split("?", 1)
    return server, route, dict(urllib.parse.parse_qsl(query, strict_parsing=True))


def test_facet_url_filters_to_configuration_runs_and_sorts_by_the_metric():
    url = ui.runs_url("http://127.0.0.1:5000/", "7", ui.facets("quick-20260101-000000-ab12", RECON, ascending=True))
    server, route, query = split(url)
    assert server == "http://127.0.0.1:5000/" and route == "/experiments/7/runs"
    assert query == {
        "searchFilter": "tags.`esweep.sweep_id` = 'quick-20260101-000000-ab12' and tags.`esweep.role` = 'config'",
        "orderByKey": "metrics.`eval/recon_mse`",
        "orderByAsc": "true",
        "workflowType": "machine_learning",
    }
    assert " " not in url and "`" not in url  # every reserved character is percent-encoded
    assert split(ui.runs_url("http://h:1", "7", ui.facets("s", COSINE, ascending=False)))[2]["orderByAsc"] == "false"
    assert set(split(ui.runs_url("http://h:1", "7", ui.facets("s", None, True)))[2]) == {"searchFilter", "workflowType"}


def test_the_filter_is_the_one_the_leaderboard_reads():
    assert ui.facets("s", RECON, True)["searchFilter"] == config_runs_filter("s")
    assert config_runs_filter("s") == f"tags.`{names.T_SWEEP_ID}` = 's' and tags.`{names.T_ROLE}` = '{names.ROLE_CONFIG}'"


def test_saved_view_holds_the_facets_and_the_metric_columns_in_mlflows_envelope():
    key, tag, value = ui.saved_view("s1", RECON, True, now_ms=1234)
    assert tag == f"mlflow.sharedViewState.{key}"
    envelope = json.loads(value)
    # the page accepts a saved view whose name is a string, createdAt a number and state a JSON string
    assert isinstance(envelope["name"], str) and envelope["createdAt"] == 1234 and isinstance(envelope["state"], str)
    state = json.loads(envelope["state"])
    assert state["searchFilter"] == config_runs_filter("s1")
    assert state["orderByKey"] == "metrics.`eval/recon_mse`" and state["orderByAsc"] is True
    assert state["selectedColumns"][-3:] == ["metrics.`eval/recon_mse`", "metrics.`eval/recon_mse_ci95`",
                                             "metrics.`eval/recon_mse_n`"]
    assert "params.`method`" in state["selectedColumns"]
    # the same view again is the same tag (rewritten, not added); another order is another view
    assert ui.saved_view("s1", RECON, True, now_ms=99)[0] == key
    assert ui.saved_view("s1", RECON, False, now_ms=1234)[0] != key
    _, _, query = split(ui.view_url("http://127.0.0.1:5000", "3", key))
    assert query == {"viewStateShareKey": key, "workflowType": "machine_learning"}


@pytest.fixture()
def planted(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    configs = [
        {"params": {names.P_METHOD: "ae", names.P_LAMBDA: "-", names.P_LATENT_DIM: "8"},
         "metrics": {RECON: summary(0.03, 0.001, 2), COSINE: summary(0.2, 0.01, 2)}},
        {"params": {names.P_METHOD: "eae", names.P_LAMBDA: "1", names.P_MU: "1", names.P_LATENT_DIM: "8"},
         "metrics": {RECON: summary(0.01, 0.001, 2), COSINE: summary(0.9, 0.01, 2)}},
        {"params": {names.P_METHOD: "eae", names.P_LAMBDA: "10", names.P_MU: "1", names.P_LATENT_DIM: "8"},
         "metrics": {RECON: summary(0.02, 0.001, 2), COSINE: summary(0.5, 0.01, 2)}},
    ]
    exp_id, ids = plant_sweep(uri, "sweep-ui", configs)
    plant_sweep(uri, "other-sweep", configs[:1])
    return uri, exp_id, ids


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("args", "metric", "ascending"), [([], RECON, True), (["--sort", "cosine_aligned"], None, True),
                                                           (["--sort", COSINE], COSINE, False),
                                                           (["--sort", "recon_mse", "--desc"], RECON, False)])
def test_cli_prints_links_whose_query_the_store_answers_in_order(planted, args, metric, ascending):
    uri, exp_id, ids = planted
    port = _free_port()
    result = CliRunner().invoke(main, ["ui", "sweep-ui", "--tracking-uri", uri, "--no-server", "--port", str(port), *args])
    if metric is None:  # a name the leaderboard does not know, with the names it does
        assert result.exit_code == 2 and "--sort: unknown metric 'cosine_aligned'; available:" in result.output
        return
    assert result.exit_code == 0, result.output
    links = [ln.strip() for ln in result.output.splitlines() if ln.strip().startswith("http")]
    view, plain = links
    _, route, query = split(plain)
    assert route == f"/experiments/{exp_id}/runs" and query["orderByAsc"] == str(ascending).lower()
    # what the page sends to runs/search for that query: the sweep's configuration runs, in the metric's order
    order = f"{query['orderByKey']} {'ASC' if ascending else 'DESC'}"
    runs = MlflowClient(uri).search_runs([exp_id], query["searchFilter"], order_by=[order])
    values = [r.data.metrics[metric] for r in runs]
    assert {r.info.run_id for r in runs} == set(ids.values()) and values == sorted(values, reverse=not ascending)
    # the saved view is on the experiment, with the same facets
    key = split(view)[2]["viewStateShareKey"]
    tags = Store(uri).client.get_experiment(exp_id).tags
    state = json.loads(json.loads(tags[f"mlflow.sharedViewState.{key}"])["state"])
    assert state["orderByKey"] == query["orderByKey"] and state["searchFilter"] == query["searchFilter"]
    assert f"metrics.`{metric}`" in state["selectedColumns"]


def test_cli_unknown_sweep_exits_2_and_writes_nothing(planted):
    uri, exp_id, _ = planted
    result = CliRunner().invoke(main, ["ui", "nope", "--tracking-uri", uri, "--no-server"])
    assert result.exit_code == 2 and "no sweep 'nope'" in result.output
    assert not any(k.startswith("mlflow.sharedViewState.") for k in Store(uri).client.get_experiment(exp_id).tags)


def test_cli_refuses_a_port_in_use_before_anything_starts(planted):
    uri, _, _ = planted
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["ui", "sweep-ui", "--tracking-uri", uri, "--port", str(port)])
    assert result.exit_code == 2 and f"--port: {port} is in use" in result.output


def test_open_opens_the_saved_view_and_no_sweep_gives_the_bare_ui(planted, tmp_path, monkeypatch):
    uri, _, _ = planted
    opened = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    result = CliRunner().invoke(main, ["ui", "--tracking-uri", uri, "--no-server", "--port", "5999", "--open"])
    assert result.exit_code == 0, result.output
    assert "sweep other-sweep" in result.output  # the newest sweep
    assert len(opened) == 1 and "viewStateShareKey=esweep-" in opened[0] and opened[0].startswith("http://127.0.0.1:5999/")
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    result = CliRunner().invoke(main, ["ui", "--tracking-uri", empty, "--no-server", "--port", "5999", "--open"])
    assert result.exit_code == 0 and "http" not in result.output and opened[-1] == "http://127.0.0.1:5999"
