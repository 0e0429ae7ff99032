"""core.flow: every transform against the autograd Jacobian in float64; priors against scipy."""

from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from core.flow import (
    ActNorm,
    AffineCoupling,
    Composite,
    ContextAffine,
    InvertibleLinear,
    MultiActNorm,
    Standardize,
    StandardGaussian,
    StudentTMixture,
    Transform,
    class_rows,
    flow_step,
    standard_gamma,
    t_noise,
)

DIM, CONTEXT, CLASSES, BATCH = 6, 10, 3, 4
TINY = {"hidden": 16, "heads": 2, "layers": 1, "value_tokens": 2, "context_tokens": 3}

def standardize(seed: int, gap: tuple[int, int] | None = None) -> Standardize:
    """A Standardize with statistics from skewed, offset samples."""
    transform = Standardize(DIM, gap)
    data = 3.0 * torch.rand(50, DIM, generator=torch.Generator().manual_seed(seed)) ** 2 + 1.0
    transform.set_statistics(data)
    return transform


FACTORIES: dict[str, Callable[[int], Transform]] = {
    "standardize": standardize,
    "standardize_lip_gap": lambda seed: standardize(seed, gap=(4, 1)),
    "actnorm": lambda seed: ActNorm(DIM),
    "multi_actnorm": lambda seed: MultiActNorm(DIM, CLASSES),
    "invertible_linear": lambda seed: InvertibleLinear(DIM, seed),
    "affine_coupling": lambda seed: AffineCoupling(DIM, CONTEXT, **TINY),
    "affine_coupling_two_blocks": lambda seed: AffineCoupling(
        DIM, CONTEXT, **{**TINY, "layers": 2}
    ),
    "context_affine": lambda seed: ContextAffine(DIM, CONTEXT, max_log_scale=2.0),
    "two_steps": lambda seed: Composite(
        [
            flow_step(DIM, CONTEXT, CLASSES, seed, **TINY),
            flow_step(DIM, CONTEXT, CLASSES, seed + 1, **TINY),
        ]
    ),
}


def perturbed(name: str, seed: int = 0) -> Transform:
    """A float64 transform with every parameter moved off its (identity) initial value."""
    torch.manual_seed(seed)
    transform = FACTORIES[name](seed).double()
    with torch.no_grad():
        for parameter in transform.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return transform


def inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (B, D), context (B, C), label (B,) covering every class."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, DIM, generator=generator, dtype=torch.float64)
    context = torch.randn(BATCH, CONTEXT, generator=generator, dtype=torch.float64)
    return x, context, torch.tensor([0, 1, 2, 0])


@pytest.mark.parametrize("name", FACTORIES)
def test_inverse_undoes_forward_both_ways(name: str) -> None:
    transform = perturbed(name)
    x, context, label = inputs()
    z, _ = transform(x, context, label)
    assert not torch.allclose(z, x)
    torch.testing.assert_close(transform.inverse(z, context, label), x, atol=1e-10, rtol=0)
    back, _ = transform(transform.inverse(x, context, label), context, label)
    torch.testing.assert_close(back, x, atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", FACTORIES)
def test_logdet_matches_autograd_jacobian(name: str) -> None:
    transform = perturbed(name)
    x, context, label = inputs()
    _, logdet = transform(x, context, label)
    for i in range(BATCH):

        def single(row: torch.Tensor) -> torch.Tensor:
            return transform(row[None], context[i : i + 1], label[i : i + 1])[0][0]

        jacobian = torch.autograd.functional.jacobian(single, x[i])
        expected = torch.linalg.slogdet(jacobian).logabsdet
        torch.testing.assert_close(logdet[i], expected, atol=1e-8, rtol=0)


@pytest.mark.parametrize("name", [name for name in FACTORIES if not name.startswith("standardize")])
def test_every_parameter_gets_a_gradient(name: str) -> None:
    transform = perturbed(name)
    x, context, label = inputs()
    z, logdet = transform(x, context, label)
    ((z**2).sum() + logdet.sum()).backward()
    for parameter_name, parameter in transform.named_parameters():
        assert parameter.grad is not None, parameter_name
        rows = parameter.grad if parameter.grad.dim() == 2 else parameter.grad[None]
        if isinstance(transform, MultiActNorm):
            assert (rows.abs().sum(dim=1) > 0).all(), parameter_name
        assert rows.abs().sum() > 0, parameter_name


def test_multi_actnorm_gradient_reaches_only_selected_classes() -> None:
    transform = perturbed("multi_actnorm")
    x, _, _ = inputs()
    z, logdet = transform(x, label=torch.tensor([0, 2, 2, 0]))
    ((z**2).sum() + logdet.sum()).backward()
    for parameter in (transform.mu, transform.log_scale):
        assert (parameter.grad[1] == 0).all()
        assert (parameter.grad[[0, 2]].abs().sum(dim=1) > 0).all()


@pytest.mark.parametrize("name", FACTORIES)
def test_state_dict_round_trip(name: str, tmp_path) -> None:
    transform = perturbed(name)
    torch.save(transform.state_dict(), tmp_path / "flow.pt")
    fresh = FACTORIES[name](seed=7).double()
    fresh.load_state_dict(torch.load(tmp_path / "flow.pt"))
    x, context, label = inputs()
    z, logdet = transform(x, context, label)
    z_fresh, logdet_fresh = fresh(x, context, label)
    assert torch.equal(z, z_fresh) and torch.equal(logdet, logdet_fresh)
    assert torch.equal(transform.inverse(x, context, label), fresh.inverse(x, context, label))


@pytest.mark.parametrize("name", ["actnorm", "multi_actnorm", "affine_coupling", "context_affine"])
def test_fresh_transform_is_identity(name: str) -> None:
    transform = FACTORIES[name](0).double()
    x, context, label = inputs()
    z, logdet = transform(x, context, label)
    assert torch.equal(z, x)
    assert torch.equal(logdet, torch.zeros(BATCH, dtype=torch.float64))


def test_fresh_flow_step_coupling_is_identity_and_linear_is_orthogonal() -> None:
    step = flow_step(DIM, CONTEXT, CLASSES, seed=3, **TINY).double()
    norm, linear, coupling = step.transforms
    assert isinstance(norm, MultiActNorm)
    assert isinstance(flow_step(DIM, CONTEXT, None, seed=3, **TINY).transforms[0], ActNorm)
    x, context, label = inputs()
    z, logdet = coupling(x, context, label)
    assert torch.equal(z, x) and torch.equal(logdet, torch.zeros(BATCH, dtype=torch.float64))
    weight = linear.weight()
    # built in float32, then cast: orthogonal to float32 precision
    eye = torch.eye(DIM, dtype=torch.float64)
    torch.testing.assert_close(weight @ weight.T, eye, atol=1e-5, rtol=0)
    zeros = torch.zeros(BATCH, dtype=torch.float64)
    torch.testing.assert_close(linear(x)[1], zeros, atol=1e-5, rtol=0)


def test_standardize_keeps_its_statistics_out_of_training() -> None:
    transform = standardize(seed=0)
    assert list(transform.parameters()) == []
    assert set(transform.state_dict()) == {"mean", "std"}
    x, _, _ = inputs()
    z, _ = transform(3.0 * x + 2.0)
    torch.testing.assert_close(z, (3.0 * x + 2.0 - transform.mean) / transform.std)


def test_a_gap_coordinate_is_the_difference_in_the_first_channels_units() -> None:
    """With gap (j, c), coordinate j is (x_j - x_c) / std_j, 0 wherever the two are equal; every
    other coordinate, the log-determinant and the context's `normalize` stay per-dimension."""
    plain, gapped = standardize(seed=2), standardize(seed=2, gap=(4, 1))
    x, _, _ = inputs()
    x = x.float().abs()
    x[0, 4] = x[0, 1]  # one frame where the two channels meet
    (z, logdet), (z_plain, logdet_plain) = gapped(x), plain(x)
    torch.testing.assert_close(z[:, 4], (x[:, 4] - x[:, 1]) / gapped.std[4])
    assert float(z[0, 4]) == pytest.approx(0.0, abs=1e-6)
    others = [k for k in range(DIM) if k != 4]
    torch.testing.assert_close(z[:, others], z_plain[:, others])
    torch.testing.assert_close(logdet, logdet_plain)
    torch.testing.assert_close(gapped.normalize(x), plain.normalize(x))
    torch.testing.assert_close(gapped.coordinates(x), z)


def test_invertible_linear_gradient_free_inverse_is_cached_and_follows_updates() -> None:
    transform = perturbed("invertible_linear")
    x, _, _ = inputs()
    z, _ = transform(x)
    with torch.no_grad():
        first = transform.inverse(z)
        cached = transform._inverse_cache[1]
        assert transform.inverse(z) is not None and transform._inverse_cache[1] is cached
    torch.testing.assert_close(first, transform.inverse(z), atol=1e-10, rtol=0)
    optimizer = torch.optim.SGD(transform.parameters(), lr=0.1)
    (transform(x)[0] ** 2).sum().backward()
    optimizer.step()
    z, _ = transform(x)
    with torch.inference_mode():
        torch.testing.assert_close(transform.inverse(z), x, atol=1e-10, rtol=0)
    assert transform._inverse_cache[1] is not cached


def test_invertible_linear_seed_sets_the_initial_matrix() -> None:
    assert torch.equal(InvertibleLinear(DIM, 5).weight(), InvertibleLinear(DIM, 5).weight())
    assert not torch.allclose(InvertibleLinear(DIM, 5).weight(), InvertibleLinear(DIM, 6).weight())


def test_coupling_scale_is_bounded_for_huge_inputs() -> None:
    coupling = perturbed("affine_coupling")
    with torch.no_grad():
        coupling.head.weight.mul_(1e4)
    x, context, _ = inputs()
    _, log_s = coupling.conditioner(1e6 * x[:, : DIM // 2], 1e6 * context)
    assert torch.isfinite(log_s).all()
    assert (log_s.abs() <= coupling.max_log_scale).all()
    assert log_s.abs().max() > 0.9 * coupling.max_log_scale


def test_coupling_without_context_raises() -> None:
    x, _, _ = inputs()
    with pytest.raises(ValueError):
        perturbed("affine_coupling")(x)


def test_context_affine_location_follows_the_context_its_scale_is_bounded_and_it_needs_one() -> None:
    transform = perturbed("context_affine")
    x, context, _ = inputs()
    same_frame = x[:1].expand(BATCH, -1)
    z, _ = transform(same_frame, context)
    assert (z[1:] - z[:1]).abs().amax() > 1e-3  # one frame, other contexts: other latents
    with torch.no_grad():
        transform.net[-1].weight.mul_(1e4)
    _, log_s = transform.location_scale(1e6 * context)
    assert torch.isfinite(log_s).all() and (log_s.abs() <= transform.max_log_scale).all()
    with pytest.raises(ValueError, match="context"):
        transform(x)


def test_multi_actnorm_depends_on_label_and_requires_one() -> None:
    transform = perturbed("multi_actnorm")
    x, _, _ = inputs()
    outputs = [transform(x, label=torch.full((BATCH,), c))[0] for c in range(CLASSES)]
    for a in range(CLASSES):
        for b in range(a + 1, CLASSES):
            assert not torch.allclose(outputs[a], outputs[b])
    with pytest.raises(ValueError):
        transform(x)
    with pytest.raises(ValueError):
        transform.inverse(x)


def test_class_weights_pick_or_mix_the_class_rows() -> None:
    """One-hot weights act exactly as the class index; a 70/30 mix of two classes gives the mixed
    rows (a blend of emotions), in both directions of the flow."""
    transform = perturbed("multi_actnorm")
    x, _, _ = inputs()
    one_hot = torch.eye(CLASSES)[torch.full((BATCH,), 1)]
    torch.testing.assert_close(transform(x, label=one_hot)[0], transform(x, label=torch.full((BATCH,), 1))[0])
    mix = torch.tensor([0.7, 0.0, 0.3]).expand(BATCH, -1)
    torch.testing.assert_close(class_rows(transform.mu, mix), (0.7 * transform.mu[0] + 0.3 * transform.mu[2]).expand(BATCH, -1))
    z, _ = transform(x, label=mix)
    torch.testing.assert_close(transform.inverse(z, label=mix), x)


# ---------------------------------------------------------------- priors


def test_student_t_class_log_prob_matches_scipy() -> None:
    prior = StudentTMixture(DIM, CLASSES, nu=4.5, seed=0).double()
    z = torch.randn(8, DIM, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for c in range(CLASSES):
        ours = prior.log_prob_class(z, torch.full((8,), c)).numpy()
        mu = prior.means[c].numpy()
        expected = stats.multivariate_t(loc=mu, shape=np.eye(DIM), df=4.5).logpdf(z.numpy())
        np.testing.assert_allclose(ours, expected, atol=1e-8, rtol=0)


def test_student_t_mixture_log_prob_matches_scipy() -> None:
    prior = StudentTMixture(DIM, CLASSES, nu=3.0, seed=1).double()
    z = torch.randn(8, DIM, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    components = np.stack(
        [
            stats.multivariate_t(loc=mu, shape=np.eye(DIM), df=3.0).logpdf(z.numpy())
            for mu in prior.means.numpy()
        ],
        axis=1,
    )
    expected = logsumexp(components, axis=1) + np.log(1 / CLASSES)
    np.testing.assert_allclose(prior.log_prob(z).numpy(), expected, atol=1e-8, rtol=0)


def test_student_t_means_are_seeded_kept_buffers() -> None:
    a, b = StudentTMixture(DIM, CLASSES, 5.0, seed=4), StudentTMixture(DIM, CLASSES, 5.0, seed=4)
    assert torch.equal(a.means, b.means)
    assert not torch.allclose(a.means, StudentTMixture(DIM, CLASSES, 5.0, seed=5).means)
    assert list(a.parameters()) == []
    assert torch.equal(a.state_dict()["means"], a.means)


def test_student_t_samples_have_the_t_moments_and_temperature_scales_them() -> None:
    prior = StudentTMixture(3, CLASSES, nu=5.0, seed=0).double()
    label = torch.full((20000,), 1)
    samples = prior.sample(label, generator=torch.Generator().manual_seed(0))
    mu = prior.means[1]
    torch.testing.assert_close(samples.mean(dim=0), mu, atol=0.05, rtol=0)
    covariance = torch.cov(samples.T)
    expected = 5.0 / 3.0 * torch.eye(3, dtype=torch.float64)  # nu / (nu - 2) I
    torch.testing.assert_close(covariance, expected, atol=0.1, rtol=0)
    cold = prior.sample(label, temperature=0.5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(cold - mu, 0.5 * (samples - mu))


def test_student_t_same_generator_seed_same_samples() -> None:
    prior = StudentTMixture(DIM, CLASSES, nu=5.0, seed=0)
    label = torch.tensor([0, 1, 2, 2])
    first = prior.sample(label, generator=torch.Generator().manual_seed(9))
    assert torch.equal(first, prior.sample(label, generator=torch.Generator().manual_seed(9)))
    assert not torch.equal(first, prior.sample(label, generator=torch.Generator().manual_seed(10)))


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.5, 40.0])
def test_standard_gamma_follows_the_gamma_distribution_below_and_above_shape_one(alpha: float) -> None:
    draws = standard_gamma(alpha, 20000, torch.Generator().manual_seed(3), torch.float64).numpy()
    assert stats.kstest(draws, stats.gamma(alpha).cdf).pvalue > 0.01
    again = standard_gamma(alpha, 20000, torch.Generator().manual_seed(3), torch.float64).numpy()
    assert np.array_equal(draws, again)


def test_standard_gamma_refuses_a_non_positive_shape() -> None:
    with pytest.raises(ValueError, match="positive"):
        standard_gamma(0.0, 3)


def test_t_noise_squared_radius_over_dim_follows_the_f_distribution() -> None:
    nu, dim = 5.0, 4
    noise = t_noise(nu, 20000, dim, torch.Generator().manual_seed(1), torch.float64).numpy()
    assert stats.kstest((noise**2).sum(axis=1) / dim, stats.f(dim, nu).cdf).pvalue > 0.01


def test_standard_gaussian_matches_scipy_and_is_seeded() -> None:
    prior = StandardGaussian(DIM).double()
    z = torch.randn(8, DIM, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    expected = stats.multivariate_normal(mean=np.zeros(DIM), cov=np.eye(DIM)).logpdf(z.numpy())
    np.testing.assert_allclose(prior.log_prob(z).numpy(), expected, atol=1e-8, rtol=0)
    first = prior.sample(5, temperature=0.5, generator=torch.Generator().manual_seed(1))
    again = prior.sample(5, temperature=1.0, generator=torch.Generator().manual_seed(1))
    assert first.shape == (5, DIM) and first.dtype == torch.float64
    torch.testing.assert_close(first, 0.5 * again)


def test_flow_step_is_rebuilt_identically_from_its_seed_whatever_the_global_rng() -> None:
    torch.manual_seed(123)
    first = flow_step(DIM, CONTEXT, CLASSES, 7, **TINY)
    torch.manual_seed(456)
    second = flow_step(DIM, CONTEXT, CLASSES, 7, **TINY)
    other = flow_step(DIM, CONTEXT, CLASSES, 8, **TINY)
    for (name, a), b, c in zip(first.state_dict().items(), second.state_dict().values(), other.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    coupling_weights = [k for k in first.state_dict() if "encoder" in k and k.endswith("weight")]
    assert any(not torch.equal(first.state_dict()[k], other.state_dict()[k]) for k in coupling_weights)


def test_content_key_changes_with_any_value_a_swap_or_a_cast_and_not_otherwise() -> None:
    from core.flow import content_key

    weights = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    key = content_key([weights])
    assert content_key([weights.clone()]) == key  # the same values: the same key
    changed = weights.clone()
    changed[2, 3] += 1e-6
    swapped = weights.clone()
    swapped[0, 0], swapped[1, 1] = weights[1, 1], weights[0, 0]  # the same sum
    for other in (changed, swapped, weights.double(), weights.reshape(5, 4)):
        assert content_key([other]) != key
