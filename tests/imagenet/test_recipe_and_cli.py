"""The authors' recipe as defaults, and a --help that documents every option."""

from __future__ import annotations

import pytest

from micronet_backbones import list_models
from micronet_backbones.imagenet import RECIPES, recipe_for, scaled_lr


def test_every_model_has_a_recipe():
    assert sorted(RECIPES) == list_models()


@pytest.mark.parametrize(
    "arch, weight_decay, warmup_epochs",
    [
        # liyunsheng13/micronet script/train_micronet_m*_4gpu.sh (and scripts/*_2gpu.sh for M2):
        # --wd 3e-5 for M0, M1, M2 and 4e-5 for M3; only M3 passes --warmup (5 epochs in main.py)
        ("micronet_m0", 3e-5, 0),
        ("micronet_m1", 3e-5, 0),
        ("micronet_m2", 3e-5, 0),
        ("micronet_m3", 4e-5, 5),
    ],
)
def test_recipe_matches_the_authors_scripts(arch, weight_decay, warmup_epochs):
    recipe = recipe_for(arch)
    assert recipe.weight_decay == weight_decay
    assert recipe.warmup_epochs == warmup_epochs
    assert (recipe.epochs, recipe.batch_size, recipe.lr, recipe.momentum) == (600, 512, 0.2, 0.9)
    assert (recipe.label_smoothing, recipe.mixup) == (0.0, 0.0)
    assert (recipe.input_size, recipe.val_resize) == (224, 256)


def test_lr_scales_linearly_with_the_batch():
    recipe = recipe_for("micronet_m1")
    assert scaled_lr(recipe, 512) == pytest.approx(0.2)
    assert scaled_lr(recipe, 256) == pytest.approx(0.1)  # the authors' 2-GPU scripts
    assert scaled_lr(recipe, 2048) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="batch size"):
        scaled_lr(recipe, 0)


def test_unknown_arch_is_named():
    with pytest.raises(KeyError, match="micronet_m9"):
        recipe_for("micronet_m9")


def test_help_documents_every_option_and_its_default(tool):
    parser = tool.build_parser()
    text = parser.format_help()
    for action in parser._actions:
        if "-h" in action.option_strings:
            continue
        for option in action.option_strings:
            assert option in text, f"{option} missing from --help"
        assert action.help, f"{action.option_strings} has no help"
        assert "(default:" in action.help or "(required)" in action.help, (
            f"{action.option_strings}: help does not state the default: {action.help!r}"
        )
        if action.required:
            assert "(required)" in action.help


def test_per_arch_defaults_are_filled_in(tool, tmp_path):
    parse = lambda *extra: tool.resolve_options(  # noqa: E731
        tool.build_parser().parse_args(["--data", str(tmp_path), *extra])
    )
    m0 = parse("--arch", "micronet_m0")
    assert (m0.weight_decay, m0.warmup_epochs, m0.lr, m0.epochs) == (3e-5, 0, 0.2, 600)
    assert (m0.input_size, m0.val_resize, m0.momentum) == (224, 256, 0.9)
    m3 = parse("--arch", "micronet_m3", "--batch-size", "1024")
    assert (m3.weight_decay, m3.warmup_epochs, m3.lr) == (4e-5, 5, pytest.approx(0.4))
    override = parse(
        "--arch", "micronet_m3", "--weight-decay", "0", "--warmup-epochs", "0", "--lr", "1"
    )
    assert (override.weight_decay, override.warmup_epochs, override.lr) == (0.0, 0, 1.0)
    # Mutual learning: Deep Mutual Learning's weight 1 and temperature 1 unless given.
    mutual = parse("--arch", "micronet_m0", "--mutual-learning")
    assert (mutual.mutual_learning, mutual.mutual_weight, mutual.mutual_temperature) == (
        True,
        1.0,
        1.0,
    )
    tuned = parse(
        "--arch", "m0", "--mutual-learning", "--mutual-weight", "0.5", "--mutual-temperature", "3"
    )
    assert (tuned.mutual_weight, tuned.mutual_temperature) == (0.5, 3.0)
    assert parse("--arch", "micronet_m0").mutual_learning is False


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--eval-only"], "--eval-only needs --weights"),
        (["--val-resize", "100", "--input-size", "128"], "--val-resize (100) is smaller"),
        (["--batch-size", "0"], "--batch-size must be positive"),
        (["--label-smoothing", "1"], "--label-smoothing must be in [0, 1)"),
        (
            ["--epochs", "3", "--warmup-epochs", "3"],
            "--warmup-epochs (3) must be below --epochs (3)",
        ),
        (["--resume", "a.pth", "--weights", "b.pth"], "drop --weights"),
        (["--stop-after-epochs", "0"], "--stop-after-epochs must be positive"),
        (["--mutual-weight", "2"], "--mutual-weight only apply with --mutual-learning"),
        (["--mutual-learning", "--mutual-weight", "-1"], "--mutual-weight must be >= 0"),
        (
            ["--mutual-learning", "--mutual-temperature", "0"],
            "--mutual-temperature must be positive",
        ),
        (
            ["--eval-only", "--weights", "w.pth", "--mutual-learning"],
            "--mutual-learning is a training",
        ),
    ],
)
def test_bad_options_are_refused_by_name(tool, tmp_path, extra, message):
    args = tool.build_parser().parse_args(
        ["--data", str(tmp_path), "--arch", "micronet_m0", *extra]
    )
    with pytest.raises(SystemExit) as error:
        tool.resolve_options(args)
    assert message in str(error.value)
