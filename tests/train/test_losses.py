import torch
import torch.nn.functional as F

from dwr.train.losses import distribution_loss, topk_correct, training_loss


def test_distribution_loss_is_kl_to_teacher_softmax():
    torch.manual_seed(0)
    s, t = torch.randn(5, 7, requires_grad=True), torch.randn(5, 7, requires_grad=True)
    pt, ps = t.softmax(1), s.softmax(1)
    manual = (pt * (pt.log() - ps.log())).sum(1).mean()
    loss = distribution_loss(s, t)
    assert torch.allclose(loss, manual, atol=1e-6)
    loss.backward()
    assert t.grad is None and s.grad is not None
    # gradient equals that of the teacher-weighted cross-entropy: (p_s - p_t) / N
    assert torch.allclose(s.grad, (ps - pt).detach() / 5, atol=1e-6)
    assert distribution_loss(t.detach(), t.detach()).abs() < 1e-6


def test_training_loss_mixes_and_smooths():
    torch.manual_seed(0)
    s, t, y = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    assert torch.allclose(training_loss(s, y), F.cross_entropy(s, y))
    smooth = training_loss(s, y, label_smoothing=0.1)
    assert torch.allclose(smooth, F.cross_entropy(s, y, label_smoothing=0.1))
    assert torch.allclose(training_loss(s, y, t), distribution_loss(s, t))
    mixed = training_loss(s, y, t, distill_weight=0.25)
    assert torch.allclose(mixed, 0.75 * F.cross_entropy(s, y) + 0.25 * distribution_loss(s, t))


def test_topk_correct():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.05, 0.15], [0.2, 0.3, 0.5]])
    y = torch.tensor([1, 2, 0])
    assert topk_correct(logits, y, ks=(1, 2, 5)) == [1, 2, 3]
