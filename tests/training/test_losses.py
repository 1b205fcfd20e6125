import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.losses import (FocalLoss, Objective, balanced_class_weights, build_loss, mix_targets,
                             soft_cross_entropy)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 7, generator=g) * 3, torch.randint(0, 7, (64,), generator=g)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_focal_at_gamma_zero_is_cross_entropy(batch, smoothing, weighted):
    logits, target = batch
    w = torch.linspace(0.5, 2.0, 7) if weighted else None
    for reduction in ("mean", "sum", "none"):
        ours = FocalLoss(0.0, w, smoothing, reduction)(logits, target)
        ref = F.cross_entropy(logits, target, weight=w, label_smoothing=smoothing, reduction=reduction)
        assert torch.allclose(ours, ref, atol=1e-5), reduction


def test_focal_down_weights_easy_examples():
    logits = torch.tensor([[6.0, 0, 0, 0, 0, 0, 0], [0.3, 0, 0, 0, 0, 0, 0]])  # easy, hard (both class 0)
    target = torch.tensor([0, 0])
    ce = F.cross_entropy(logits, target, reduction="none")
    focal = FocalLoss(2.0, reduction="none")(logits, target)
    assert (focal < ce).all()
    p_true = F.softmax(logits, 1)[:, 0]
    assert torch.allclose(focal / ce, (1 - p_true) ** 2)  # the modulating factor, exactly
    ratio = focal / ce
    assert ratio[0] < 1e-3 and ratio[1] > 0.5  # the easy example loses almost all its weight, the hard one little


def test_focal_gradient_flows(batch):
    logits, target = batch
    logits = logits.clone().requires_grad_()
    FocalLoss(2.0, label_smoothing=0.1)(logits, target).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_balanced_weights_favour_rare_classes():
    labels = np.array([0] * 80 + [1] * 20)
    w = balanced_class_weights(labels, 2)
    assert w[1] > w[0]
    assert torch.isclose((w[torch.from_numpy(labels)]).mean(), torch.tensor(1.0))


def test_build_loss_from_config():
    labels = np.arange(70) % 7
    loss = build_loss({"name": "cross_entropy", "gamma": 2.0, "label_smoothing": 0.1, "class_weights": None}, labels, 7)
    assert loss.gamma == 0.0 and loss.label_smoothing == 0.1
    loss = build_loss({"name": "focal", "gamma": 1.5, "label_smoothing": 0.0, "class_weights": "balanced"}, labels, 7)
    assert loss.gamma == 1.5 and torch.allclose(loss.weight, torch.ones(7))
    with pytest.raises(ValueError):
        FocalLoss(reduction="avg")


def test_soft_cross_entropy_matches_torch_on_distributions_and_one_hot():
    torch.manual_seed(0)
    logits = torch.randn(8, 7)
    probs = torch.softmax(torch.randn(8, 7), dim=1)
    torch.testing.assert_close(soft_cross_entropy(logits, probs), F.cross_entropy(logits, probs))
    labels = torch.arange(8) % 7
    torch.testing.assert_close(soft_cross_entropy(logits, F.one_hot(labels, 7).float()),
                               F.cross_entropy(logits, labels))


@pytest.fixture
def teacher_probs():
    return torch.softmax(torch.randn(64, 7, generator=torch.Generator().manual_seed(1)), dim=1)


def test_distillation_objective_blends_label_loss_and_teacher_soft_targets(batch, teacher_probs):
    logits, y = batch
    label_loss, w = FocalLoss(2.0, label_smoothing=0.1), 0.3
    expected = (1 - w) * label_loss(logits, y) + w * soft_cross_entropy(logits, teacher_probs)
    torch.testing.assert_close(Objective(label_loss, w)(logits, y, teacher_probs), expected)
    torch.testing.assert_close(Objective(label_loss, w)(logits, y), label_loss(logits, y))  # no teacher


def test_mixup_objective_scores_each_image_against_its_partners_targets_too(batch, teacher_probs):
    logits, y = batch
    label_loss, w, lam = FocalLoss(0.0), 0.3, 0.7
    partner = torch.randperm(64, generator=torch.Generator().manual_seed(2))

    def blend(y, probs):
        return (1 - w) * label_loss(logits, y) + w * soft_cross_entropy(logits, probs)

    expected = lam * blend(y, teacher_probs) + (1 - lam) * blend(y[partner], teacher_probs[partner])
    mixed = mix_targets(teacher_probs, partner, lam)
    torch.testing.assert_close(Objective(label_loss, w)(logits, y, mixed, partner, lam), expected)
    torch.testing.assert_close(mixed.sum(1), torch.ones(64))
    assert mix_targets(teacher_probs, None, 1.0) is teacher_probs
    torch.testing.assert_close(Objective(label_loss)(logits, y, None, partner, lam),
                               lam * label_loss(logits, y) + (1 - lam) * label_loss(logits, y[partner]))
