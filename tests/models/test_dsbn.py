"""Domain-specific batch norm keeps separate statistics and uses the right ones."""

import pytest
import torch

from labelsky.models.backbones import create_backbone
from labelsky.models.dsbn import DomainBatchNorm2d, convert_to_domain_bn, domain, set_domain


def test_two_sets_of_running_statistics_and_the_right_one_is_used():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    convert_to_domain_bn(net, 2)
    bn = net[1]
    assert isinstance(bn, DomainBatchNorm2d) and len(bn.bns) == 2
    net.train()
    src, tgt = torch.randn(16, 2, 8, 8), 5 + 3 * torch.randn(16, 2, 8, 8)
    for _ in range(20):
        with domain(net, 0):
            net(src)
        with domain(net, 1):
            net(tgt)
    m0, m1 = bn.bns[0].running_mean, bn.bns[1].running_mean
    assert not torch.allclose(m0, m1, atol=0.5)  # two different sets of statistics
    net.eval()
    conv = net[0](tgt)
    with domain(net, 1):
        out1 = net[1](conv)
    with domain(net, 0):
        out0 = net[1](conv)
    expected1 = bn.bns[1](conv)
    assert torch.allclose(out1, expected1) and not torch.allclose(out0, out1)
    # in eval mode the target domain's statistics normalise target features to about zero mean
    assert out1.mean().abs() < 0.3 < out0.mean().abs()


def test_convert_timm_backbone_keeps_weights_and_gradients_flow():
    model, _ = create_backbone("resnet10t", 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    convert_to_domain_bn(model, 2)
    n_dbn = sum(isinstance(m, DomainBatchNorm2d) for m in model.modules())
    assert n_dbn > 5
    bn_weights = [k for k in before if k.endswith("bn1.weight")]
    sd = model.state_dict()
    for k in bn_weights:
        head, tail = k.rsplit(".", 1)
        assert torch.equal(sd[f"{head}.bns.0.{tail}"], before[k]) and torch.equal(sd[f"{head}.bns.1.{tail}"], before[k])
    set_domain(model, 1)
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None for n, g in grads.items() if ".bns.1." in n)
    assert all(g is None for n, g in grads.items() if ".bns.0." in n)  # the other domain is untouched
    with pytest.raises(ValueError, match="domain 2 out of range"):
        set_domain(model, 2)
