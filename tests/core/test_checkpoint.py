"""Checkpoint reading, the authors' key map, and all-or-nothing loading with clear errors."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import pickle
import urllib.error
from pathlib import Path

import pytest
import torch
from micronet_testing import ARCHS, compact_fixture

import micronet_backbones as mb
from micronet_backbones import registry
from micronet_backbones.checkpoint import (
    CheckpointDownloadError,
    CheckpointError,
    authors_key_map,
    convert_authors_state_dict,
    load_pretrained,
    read_checkpoint,
)
from micronet_backbones.specs import M0


def _assert_same_state(model, expected_state):
    state = model.state_dict()
    assert set(state) == set(expected_state)
    assert all(torch.equal(state[k], expected_state[k]) for k in state)


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_unchanged(model, snapshot):
    state = model.state_dict()
    assert all(torch.equal(state[k], snapshot[k]) for k in snapshot)


# --- key map ----------------------------------------------------------------------------------


def test_authors_key_map_examples_for_m0():
    table = authors_key_map(M0)
    assert table["features.0.stem.0.conv.0"] == "stem.conv_kx1"
    assert table["features.0.stem.0.conv.3"] == "stem.bn_1xk"
    assert table["features.1.layers.0.conv.1"] == "stages.0.0.depthwise.bn_kx1"
    assert table["features.1.layers.5.fc.0"] == "stages.0.0.act_project.fc1"
    assert table["features.3.layers.4.conv.0"] == "stages.2.0.project.conv"
    assert table["features.4.layers.0.conv.0"] == "stages.2.1.expand.conv"
    assert table["features.4.layers.3.conv.2"] == "stages.2.1.depthwise.conv_1xk"
    assert table["features.4.layers.8.fc.2"] == "stages.2.1.act_project.fc2"
    assert table["features.7.layers.1.fc.2"] == "stages.3.2.act_expand.fc2"
    assert table["classifier.0.linear.1"] == "head.bn1"
    assert table["classifier.2.linear.0"] == "head.fc2"
    assert len(set(table.values())) == len(table)  # one-to-one


@pytest.mark.parametrize("arch", ARCHS)
def test_conversion_is_a_bijection_onto_our_state_dict(arch):
    authors = compact_fixture(arch)["state_dict"]
    ours = convert_authors_state_dict(authors, registry.get_spec(f"micronet_{arch}"))
    model_state = mb.create_model(f"micronet_{arch}").state_dict()
    assert set(ours) == set(model_state)
    assert len(ours) == len(authors)
    assert all(ours[k].shape == model_state[k].shape for k in ours)


def test_conversion_names_keys_it_cannot_place():
    authors = dict(compact_fixture("m1")["state_dict"])
    authors["features.9.layers.0.conv.0.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"features\.9\.layers\.0\.conv\.0\.weight"):
        convert_authors_state_dict(authors, M0)


# --- formats ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def m0_state():
    """Our state_dict of M0 holding the fixture's weights."""
    model = mb.create_model("micronet_m0")
    load_pretrained(model, compact_fixture("m0")["state_dict"])
    return model.state_dict()


@pytest.mark.parametrize(
    "wrap",
    ["bare", "state_dict", "module_prefix", "state_dict_module_prefix", "ours", "ours_model_key"],
)
def test_checkpoint_formats(wrap, tmp_path, m0_state):
    our_state = m0_state
    authors = compact_fixture("m0")["state_dict"]
    prefixed = {f"module.{k}": v for k, v in authors.items()}
    payload = {
        "bare": authors,
        "state_dict": {"state_dict": authors, "epoch": 150, "arch": "MicroNet"},
        "module_prefix": prefixed,
        "state_dict_module_prefix": {"state_dict": prefixed, "best_prec1": 51.4},
        "ours": our_state,
        "ours_model_key": {"model": our_state},
    }[wrap]
    path = tmp_path / "checkpoint.pth"
    torch.save(payload, path)
    model = mb.create_model("micronet_m0", pretrained=str(path))
    _assert_same_state(model, m0_state)


def test_pretrained_accepts_a_file_url_and_true(tmp_path, monkeypatch, m0_state):
    path = tmp_path / "micronet-m0.pth"
    torch.save({"state_dict": compact_fixture("m0")["state_dict"]}, path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    model = mb.create_model("micronet_m0", pretrained=path.as_uri())
    _assert_same_state(model, m0_state)
    assert (tmp_path / "torch_home" / "hub" / "checkpoints" / "micronet-m0.pth").is_file()

    # pretrained=True goes to the spec's URL (the authors' one; a file:// URL in this test)
    assert registry.get_spec("micronet_m0").url.endswith("micronet-m0.pth")
    spec = dataclasses.replace(registry.get_spec("micronet_m0"), url=path.as_uri())
    monkeypatch.setitem(registry._SPECS, "micronet_m0", spec)
    model = mb.create_model("micronet_m0", pretrained=True)
    _assert_same_state(model, m0_state)


def test_features_only_skips_the_classifier_by_name():
    model = mb.create_model("micronet_m2", features_only=True)
    result = load_pretrained(model, compact_fixture("m2")["state_dict"])
    assert result.source_format == "authors"
    assert result.skipped and all(k.startswith("head.") for k in result.skipped)
    assert set(result.loaded) == set(model.state_dict())


def test_other_num_classes_needs_skip_classifier():
    authors = compact_fixture("m0")["state_dict"]
    model = mb.create_model("micronet_m0", num_classes=10)
    before = _snapshot(model)
    with pytest.raises(CheckpointError, match=r"head\.fc2\.weight.*skip_classifier=True"):
        load_pretrained(model, authors)
    _assert_unchanged(model, before)
    result = load_pretrained(model, authors, skip_classifier=True)
    assert "head.fc2.weight" in result.skipped
    state = model.state_dict()
    torch.testing.assert_close(state["head.fc2.weight"], before["head.fc2.weight"])
    torch.testing.assert_close(
        state["stem.conv_kx1.weight"], authors["features.0.stem.0.conv.0.weight"]
    )


# --- errors, nothing half-loaded -------------------------------------------------------------


def test_checkpoint_of_another_arch_names_both():
    model = mb.create_model("micronet_m0")
    before = _snapshot(model)
    with pytest.raises(CheckpointError) as info:
        load_pretrained(model, compact_fixture("m1")["state_dict"])
    message = str(info.value)
    assert "micronet_m1" in message and "micronet_m0" in message
    assert "nothing was loaded" in message
    _assert_unchanged(model, before)

    ours = mb.create_model("micronet_m3").state_dict()
    with pytest.raises(
        CheckpointError, match="checkpoint is a micronet_m3, but the model is a micronet_m0"
    ):
        load_pretrained(model, ours)
    _assert_unchanged(model, before)


def test_missing_unexpected_and_mismatched_keys_are_named():
    authors = dict(compact_fixture("m0")["state_dict"])
    model = mb.create_model("micronet_m0")
    before = _snapshot(model)

    missing = {k: v for k, v in authors.items() if k != "features.3.layers.4.conv.0.weight"}
    with pytest.raises(CheckpointError, match=r"missing keys: stages\.2\.0\.project\.conv\.weight"):
        load_pretrained(model, missing)

    unexpected = dict(authors, **{"features.2.layers.6.conv.0.weight": torch.zeros(3)})
    with pytest.raises(
        CheckpointError, match=r"unexpected keys: features\.2\.layers\.6\.conv\.0\.weight"
    ):
        load_pretrained(model, unexpected)

    mismatched = dict(authors)
    mismatched["features.5.layers.1.fc.0.bias"] = torch.zeros(17)
    with pytest.raises(
        CheckpointError,
        match=r"stages\.3\.0\.act_expand\.fc1\.bias \(checkpoint \(17,\), model \(16,\)\)",
    ):
        load_pretrained(model, mismatched)
    _assert_unchanged(model, before)


def test_files_that_are_not_checkpoints(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="could not be read as a PyTorch checkpoint"):
        mb.create_model("micronet_m0", pretrained=text)

    a_list = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], a_list)
    with pytest.raises(CheckpointError, match="not a state_dict"):
        read_checkpoint(a_list)

    no_tensors = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "arch": "MicroNet"}, no_tensors)
    with pytest.raises(CheckpointError, match="not a state_dict.*epoch"):
        read_checkpoint(no_tensors)

    # weights_only=True refuses arbitrary pickled objects
    pickled = tmp_path / "pickled.pth"
    torch.save(
        {"state_dict": compact_fixture("m0")["state_dict"], "args": argparse.Namespace(a=1)},
        pickled,
    )
    with pytest.raises(CheckpointError, match="could not be read"):
        read_checkpoint(pickled)

    strange = {"backbone.conv.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"neither.*backbone\.conv\.weight"):
        load_pretrained(mb.create_model("micronet_m0"), strange)

    with pytest.raises(FileNotFoundError):
        mb.create_model("micronet_m0", pretrained=tmp_path / "absent.pth")


def test_a_url_that_cannot_be_downloaded_says_so(tmp_path, monkeypatch):
    """A failed download is named as such, with what to do offline, not as an unreadable file.
    No network is touched: an unknown URL scheme fails in urllib, and the authors' URL (what
    pretrained=True fetches) meets a download function that fails as it does offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    model = mb.create_model("micronet_m0")
    before = _snapshot(model)
    with pytest.raises(CheckpointDownloadError) as info:
        load_pretrained(model, "nosuch://example.invalid/micronet-m0.pth")
    message = str(info.value)
    assert "the download of nosuch://example.invalid/micronet-m0.pth failed (URLError" in message
    assert "unknown url type" in message and "pass its local path instead of the URL" in message
    assert "could not be read as a PyTorch checkpoint" not in message
    assert isinstance(info.value, CheckpointError)  # callers catching CheckpointError still do
    _assert_unchanged(model, before)

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    url = registry.get_spec("micronet_m3").url
    with pytest.raises(CheckpointDownloadError, match="name resolution") as info:
        mb.create_model("micronet_m3", pretrained=True)
    assert info.value.url == url and f"the download of {url} failed" in str(info.value)
    copy = pickle.loads(pickle.dumps(info.value))  # as it comes back from a worker process
    assert (type(copy), str(copy), copy.url) == (CheckpointDownloadError, str(info.value), url)
    assert "Temporary failure in name resolution" in info.value.reason


def test_checkpoint_modules_do_not_import_the_registry():
    """No import circle: the registry imports the checkpoint package, never the reverse."""
    package = Path(mb.__file__).parent / "checkpoint"
    modules = sorted(package.glob("*.py"))
    assert {m.stem for m in modules} >= {"authors_keys", "errors", "formats", "loading", "reader"}
    for module in modules:
        tree = ast.parse(module.read_text())
        imported = [
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        ] + [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        ]
        assert not [name for name in imported if "registry" in name], module.name


def test_load_pretrained_needs_a_micronet():
    with pytest.raises(TypeError):
        load_pretrained(torch.nn.Linear(2, 2), {})
