"""Bad specs raise SpecError naming the field, the value and what is allowed."""

from __future__ import annotations

import pytest

from models import build_model, count_params
from models.errors import SpecError
from models.shapes import square_factors
from models.spec import ArchSpec, ConvSpec, LayerSpec


def _message(make: object) -> str:
    with pytest.raises(SpecError) as err:
        make()  # type: ignore[operator]
    return str(err.value)


def test_unknown_kind() -> None:
    assert _message(lambda: ArchSpec(input_shape=(1, 8, 8), num_classes=10,
                                     layers=(LayerSpec(kind="dense"),))) == (
        "layers[0].kind: got 'dense'; allowed: full, bilinear, lowrank"
    )


def test_rank_above_min_of_matrix_view() -> None:
    spec = ArchSpec(input_shape=(1, 8, 8), num_classes=10, base_channels=2,
                    layers=(LayerSpec(kind="lowrank", rank=96),))
    assert _message(lambda: count_params(spec)) == (
        "layers[0].rank: rank must be <= min(out_features, in_features) = 64; got rank=96, "
        "in_features=64, out_features=128 (lower the rank or use null for full rank)"
    )


def test_conv_rank_above_min_names_the_matrix_view() -> None:
    spec = ArchSpec(input_shape=(3, 8, 8), num_classes=10, backbone="cnn", base_channels=4,
                    convs=(ConvSpec(kind="lowrank", rank=13, decomposition="spatial"),))
    assert _message(lambda: build_model(spec)) == (
        "convs[0].rank: rank must be <= min(out_channels*k, in_channels*k) = 9; got rank=13, "
        "in_channels*k=9, out_channels*k=12 (lower the rank or use null for full rank)"
    )


@pytest.mark.parametrize("multiplier", [0, -1.5])
def test_multiplier_must_be_positive(multiplier: float) -> None:
    assert _message(lambda: LayerSpec(multiplier=multiplier).validate("layers[2]")) == (
        f"layers[2].multiplier: got {multiplier!r}; must be a number > 0"
    )


def test_pooling_below_one_pixel_does_not_chain() -> None:
    spec = ArchSpec(input_shape=(1, 4, 4), num_classes=3, backbone="cnn",
                    convs=(ConvSpec(pool=True), ConvSpec(pool=True), ConvSpec(pool=True)))
    assert _message(lambda: build_model(spec)) == (
        "convs[2].pool: the feature map entering is (8, 1, 1) (C, H, W); a 2 x 2 max-pool needs "
        "H, W >= 2; drop the pool, pool in fewer convolutions, or use a larger input"
    )


@pytest.mark.parametrize("threshold", [0.0, 1.0, 2])
def test_energy_threshold_outside_open_unit_interval(threshold: float) -> None:
    assert _message(lambda: ArchSpec(
        input_shape=(1, 8, 8), num_classes=10,
        classifier=LayerSpec(kind="lowrank", energy_threshold=threshold))) == (
        f"classifier.energy_threshold: got {threshold!r}; must lie strictly between 0 and 1 "
        "(the fraction of singular-value energy pruning may drop, e.g. 0.01)"
    )


def test_bilinear_on_a_prime_flat_input_says_what_to_do() -> None:
    spec = ArchSpec(input_shape=(1, 1, 7), num_classes=3, layers=(LayerSpec(kind="bilinear"),))
    assert _message(lambda: count_params(spec)) == (
        "layers[0]: a bilinear projection reshapes 7 features into a d1 x d2 grid with "
        "d1, d2 >= 2, but 7 is prime; pad the input to a composite size (e.g. 8 = 2 x 4) "
        "or use kind 'full'"
    )


@pytest.mark.parametrize(("n", "expected"), [(784, (28, 28)), (1000, (25, 40)), (12, (3, 4)),
                                             (4096, (64, 64)), (4, (2, 2))])
def test_square_factors_most_square(n: int, expected: tuple[int, int]) -> None:
    assert square_factors(n, field="x") == expected


def test_flat_input_is_factored_for_bilinear() -> None:
    spec = ArchSpec(input_shape=(1, 1, 12), num_classes=2, layers=(LayerSpec(kind="bilinear"),))
    model = build_model(spec)
    assert model.layers[0].in_grid == (3, 4)


def test_counting_needs_no_torch() -> None:
    """plan.py and costs.py (and the models package itself) import no torch."""
    import subprocess
    import sys

    code = ("import sys, models, models.plan, models.costs; "
            "from models.spec import ArchSpec; "
            "n = models.count_params(ArchSpec(input_shape=(1, 8, 8), num_classes=10)); "
            "print(n, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(64 * 10 + 10), "False"]
