"""Spec validation: each bad field gets one clear message naming it, exit code 2, and nothing starts."""

from pathlib import Path

import pytest
import ray
import yaml
from click.testing import CliRunner

from sweep.cli import main
from sweep.spec import SpecError, expand, load_spec, parse_spec

GOOD = {"name": "t", "dataset": "mnist5k", "methods": ["ae", "eae"], "lambdas": [0.1, 1.0], "seeds": [0, 1]}


@pytest.mark.parametrize(
    ("patch", "field", "allowed"),
    [
        ({"lambdas": [-1.0]}, "lambdas", ">= 0"),
        ({"mus": [0.5]}, "mus", "> 0.5"),
        ({"latent_dims": [1]}, "latent_dims", "[2, 4096]"),
        ({"seeds": [-3]}, "seeds", ">= 0"),
        ({"epochs": 0}, "epochs", "greater than or equal to 1"),
        ({"methods": ["nope"]}, "methods", "valid methods: ae"),
        ({"dataset": "imagenet"}, "dataset", "valid datasets:"),
        ({"resources": {"cpu": 0}}, "resources.cpu", "greater than 0"),
        ({"colour": "blue"}, "colour", "unknown field"),
        ({"methods": [{"name": "ae", "lambdas": [0.1]}]}, "methods.0", "takes no lambda"),
        ({"methods": [{"name": "ae", "mus": [2.0]}]}, "methods.0", "takes no mu"),
        ({"name": "bad name!"}, "name", "pattern"),
        ({"max_train": 10}, "max_train", ">= batch_size"),
        ({"pack": 0}, "pack", "greater than or equal to 1"),
        ({"pack": 65}, "pack", "less than or equal to 64"),
        ({"pack": 4, "search": {"metric": "eval/eccentricity"}}, "pack", "cannot be combined with 'search'"),
        ({"amp": "fp8"}, "amp", "'off' or 'bf16'"),
        ({"amp": "bf16", "methods": ["vae"]}, "amp", "amp works with: ae, eae"),
    ],
)
def test_bad_field_named_with_allowed_range(patch, field, allowed):
    with pytest.raises(SpecError) as err:
        parse_spec({**GOOD, **patch})
    assert f"{field}:" in str(err.value)
    assert allowed in str(err.value)


def test_pack_is_off_by_default_and_leaves_the_grid_as_it_is():
    assert parse_spec(GOOD).pack == 1
    packed = parse_spec({**GOOD, "pack": 64})
    assert packed.pack == 64 and expand(packed) == expand(parse_spec(GOOD))


def test_grid_expansion_gives_lambda_and_mu_only_to_methods_that_take_them():
    trials = expand(parse_spec({**GOOD, "mus": [1.0, 4.5]}))
    ae = [t for t in trials if t.train.method == "ae"]
    eae = [t for t in trials if t.train.method == "eae"]
    assert len(ae) == 2 and all(t.train.lam is None and t.train.mu is None for t in ae)
    assert len(eae) == 2 * 2 * 2
    assert len({t.key for t in trials}) == len(trials)
    assert {t.config_key for t in eae} == {f"eae__lam{lam}__mu{mu}__d8" for lam in ("0.1", "1") for mu in ("1", "4.5")}


def test_builtin_quickstart_is_valid_and_has_ae_and_eae_at_three_lambdas():
    spec = load_spec("quickstart")
    trials = expand(spec)
    assert {t.train.method for t in trials} == {"ae", "eae"}
    assert len({t.train.lam for t in trials if t.train.method == "eae"}) == 3
    assert len(spec.seeds) >= 3  # a 95% interval and a Welch test per configuration need n >= 2; 3 keeps t small


def test_cli_bad_spec_exits_2_and_starts_nothing(tmp_path: Path):
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text(yaml.safe_dump({**GOOD, "lambdas": [0.1, -2]}))
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path) as cwd:
        result = runner.invoke(main, ["run", str(spec_file)])
        assert result.exit_code == 2
        assert "lambdas: every lambda must be >= 0" in result.output
        assert not (Path(cwd) / "mlflow.db").exists()
        assert not (Path(cwd) / "esweep-results").exists()
    assert not ray.is_initialized()


def test_cli_unknown_builtin_and_missing_file_exit_2(tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(main, ["run", "no-such-spec"])
    assert result.exit_code == 2 and "built-in specs: " in result.output
    result = runner.invoke(main, ["run", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "not found" in result.output


def test_cli_lists_builtin_specs():
    result = CliRunner().invoke(main, ["specs"])
    assert result.exit_code == 0 and "quickstart" in result.output


def test_fid_infinity_is_off_by_default_and_needs_enough_samples():
    assert parse_spec(GOOD).evaluation.fid_infinity is False
    on = parse_spec({**GOOD, "evaluation": {"fid_infinity": True, "fid_samples": 100}})
    assert on.evaluation.model_dump(mode="json")["fid_infinity"] is True  # what the trainable receives
    with pytest.raises(SpecError) as err:
        parse_spec({**GOOD, "evaluation": {"fid_infinity": True, "fid_samples": 5}})
    assert "evaluation:" in str(err.value) and "fid_infinity needs fid_samples >= 10" in str(err.value)


def test_fid_reference_is_test_by_default_train_allowed_anything_else_refused():
    assert parse_spec(GOOD).evaluation.fid_reference == "test" and parse_spec(GOOD).evaluation.memorisation is True
    train = parse_spec({**GOOD, "evaluation": {"fid_reference": "train", "memorisation": False}})
    assert train.evaluation.model_dump(mode="json")["fid_reference"] == "train"  # what the trainable receives
    with pytest.raises(SpecError) as err:
        parse_spec({**GOOD, "evaluation": {"fid_reference": "validation"}})
    assert "evaluation.fid_reference" in str(err.value) and "'test' or 'train'" in str(err.value)
