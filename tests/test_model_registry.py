"""The model registry refuses versions that leave it and model files that changed since they were saved."""

import hashlib
import json

import joblib
import pytest

from orchestration_pipelines.model_registry import (
    InvalidModelVersion,
    ModelIntegrityError,
    ModelNotFound,
    ModelRegistry,
)


@pytest.fixture
def registry(tmp_path):
    return ModelRegistry(tmp_path / "models")


def test_saved_card_records_the_model_files_sha256(registry):
    version = registry.save("fraud", {"weights": [1, 2, 3]}, {"feature_set": "builtin"})
    card = registry.card("fraud", version)
    model_file = registry.root / "fraud" / version / "model.joblib"
    assert card["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert registry.load("fraud", version)[0] == {"weights": [1, 2, 3]}


def test_the_same_model_saved_twice_in_one_second_is_two_versions(registry):
    """A deterministic retrain on unchanged data saves identical bytes; it must not clash with the first."""
    first, second = (registry.save("maintenance", {"weights": [1]}, {"baseline": None}) for _ in range(2))
    assert first != second
    loaded = [registry.load("maintenance", version)[0] for version in (first, second)]
    assert loaded == [{"weights": [1]}] * 2


@pytest.mark.parametrize(
    "version", ["../../x", "../fraud/20261101T000000-abcdef12", "/tmp/x", "CURRENT", "", "20261101T000000"]
)
def test_versions_outside_the_naming_rule_are_refused_before_any_read(registry, tmp_path, version):
    outside = tmp_path / "x"
    outside.mkdir()
    joblib.dump("payload from outside the registry", outside / "model.joblib")
    (outside / "card.json").write_text(json.dumps({"version": "x"}))
    with pytest.raises(InvalidModelVersion, match="not a model version"):
        registry.load("fraud", version)
    with pytest.raises(InvalidModelVersion):
        registry.card("fraud", version)


def test_model_names_cannot_leave_the_registry(registry):
    with pytest.raises(InvalidModelVersion, match="model name"):
        registry.save("../elsewhere", {}, {})


def test_a_tampered_model_file_refuses_to_load(registry):
    version = registry.save("fraud", {"weights": [1]}, {})
    joblib.dump({"weights": "swapped"}, registry.root / "fraud" / version / "model.joblib")
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        registry.load("fraud", version)


def test_a_card_without_a_hash_refuses_to_load(registry):
    version = registry.save("fraud", {"weights": [1]}, {})
    card_path = registry.root / "fraud" / version / "card.json"
    card = json.loads(card_path.read_text())
    del card["sha256"]
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelIntegrityError, match="no SHA-256"):
        registry.load("fraud", version)


def test_a_tampered_current_pointer_is_refused(registry):
    registry.save("fraud", {}, {})
    (registry.root / "fraud" / "CURRENT").write_text("../../x")
    with pytest.raises(InvalidModelVersion):
        registry.load("fraud")


def test_a_missing_valid_version_is_not_found(registry):
    with pytest.raises(ModelNotFound):
        registry.load("fraud", "20261101T000000-abcdef12")
    assert registry.versions("fraud") == []


def test_cli_refuses_a_model_version_outside_the_registry(data_env, small_world, tmp_path):
    from fraud_helpers import write_landing_file
    from test_cli import run_cli

    outside = data_env / "x"
    outside.mkdir(parents=True)
    joblib.dump("would run on load", outside / "model.joblib")
    source = write_landing_file(tmp_path, "batch.csv", small_world.batches[0].head(20))
    completed = run_cli("fraud", "score", str(source), "--model-version", "../../x", check=False)
    assert completed.returncode != 0
    assert "is not a model version" in completed.stderr and "Traceback" not in completed.stderr
