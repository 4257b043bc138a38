import math

import numpy as np
import pytest
import torch

from granumamba.model import (
    GranuMamba,
    Mamba,
    MambaStack,
    ModelLoadError,
    MultiRateQuantizer,
    PartVQVAE,
    VectorQuantizer,
    combine,
    cuda_kernels_available,
    prior_loss,
    selective_scan,
    selective_scan_reference,
)
from granumamba.model.configs import GranuMambaConfig, VQConfig
from granumamba.model.generator import StepSampling
from granumamba.model.losses import coarse_split_loss, foot_contact_loss, held_teacher, position_losses, stage1_loss, stage2_loss
from granumamba.model.sampler import codebook_arrays, sample_codes
from granumamba.model.vqvae import low_pass
from granumamba.motion.parts import PART_DIMS, PART_NAMES, Motion, split_parts

TINY = {
    "vq_hidden": 32,
    "latent_dim": 16,
    "codebook_size": 32,
    "d_model": 32,
    "n_global": 1,
    "n_local": 1,
    "vocab": ["hello", "world"],
    "num_speakers": 4,
    "default_speaker": 1,
}


def scan_inputs(length, batch=2, d=24, n=16, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return dict(
        u=r(batch, d, length),
        delta=r(batch, d, length),
        A=-torch.rand(d, n, generator=g, dtype=dtype) * 4,
        B=r(batch, n, length),
        C=r(batch, n, length),
        D=r(d),
        z=r(batch, d, length),
        delta_bias=r(d) * 0.5,
    )


@pytest.mark.parametrize("length", [1, 2, 17, 900])
@pytest.mark.parametrize("grad", [True, False], ids=["training", "generation"])  # torch's loop; the compiled loop
def test_fast_scan_matches_the_per_step_reference(length, grad):
    x = scan_inputs(length)
    x["A"][:, :2] *= 40  # decays that underflow float32 within a step
    y_ref, h_ref = selective_scan_reference(**x, delta_softplus=True, return_last_state=True)
    with torch.set_grad_enabled(grad):
        y, h = selective_scan(**x, delta_softplus=True, return_last_state=True, chunk=64)
    scale = y_ref.abs().max().clamp_min(1.0)
    assert (y - y_ref).abs().max() / scale < 1e-5 and (h - h_ref).abs().max() / h_ref.abs().max().clamp_min(1) < 1e-5
    x64 = scan_inputs(length, dtype=torch.float64)
    assert torch.allclose(
        selective_scan(**x64, delta_softplus=True, chunk=7), selective_scan_reference(**x64, delta_softplus=True), atol=1e-10
    )


def test_the_compiled_scans_exp_is_within_an_ulp_or_two_and_underflows_to_zero():
    from granumamba.model.scan import _exp_nonpositive

    x = np.concatenate([-np.geomspace(1e-8, 87.0, 4000), [0.0, -88.0, -200.0, -1e30]]).astype(np.float32)
    got = np.array([_exp_nonpositive(v) for v in x], dtype=np.float64)
    want = np.exp(x.astype(np.float64))
    normal = x > -87
    assert np.all(np.abs(got[normal] - want[normal]) <= 3e-7 * want[normal])  # float32's ulp is 6e-8 to 1.2e-7
    assert np.all((got[~normal] >= 0) & (got[~normal] < 1e-37))


def test_scan_gradients_are_exact():
    x = {k: v.requires_grad_() for k, v in scan_inputs(11, batch=1, d=4, n=3, dtype=torch.float64).items()}
    h0 = torch.randn(1, 4, 3, dtype=torch.float64, requires_grad=True)
    names = list(x)
    f = lambda *a: selective_scan(**dict(zip(names, a)), delta_softplus=True, initial_state=h0, chunk=4)  # noqa: E731
    assert torch.autograd.gradcheck(f, tuple(x.values()))
    frozen = {k: v.detach() for k, v in x.items()}
    assert torch.autograd.gradcheck(lambda h: selective_scan(**frozen, delta_softplus=True, initial_state=h, chunk=4), (h0,))


def mamba_ssm_parameter_shapes(d_model, d_state=16, d_conv=4, expand=2):
    """The published signature of mamba_ssm.modules.mamba_simple.Mamba (bias=False, conv_bias=True)."""
    d_inner, dt_rank = expand * d_model, math.ceil(d_model / 16)
    return {
        "in_proj.weight": (2 * d_inner, d_model),
        "conv1d.weight": (d_inner, 1, d_conv),
        "conv1d.bias": (d_inner,),
        "x_proj.weight": (dt_rank + 2 * d_state, d_inner),
        "dt_proj.weight": (d_inner, dt_rank),
        "dt_proj.bias": (d_inner,),
        "A_log": (d_inner, d_state),
        "D": (d_inner,),
        "out_proj.weight": (d_model, d_inner),
    }


@pytest.mark.parametrize("d_model,d_state,expand", [(64, 16, 2), (100, 8, 2), (256, 16, 1)])
def test_mamba_state_dict_has_mamba_ssm_names_and_shapes(d_model, d_state, expand):
    block = Mamba(d_model, d_state=d_state, expand=expand)
    assert {k: tuple(v.shape) for k, v in block.state_dict().items()} == mamba_ssm_parameter_shapes(d_model, d_state, 4, expand)
    A = -torch.exp(block.A_log)
    assert torch.allclose(A[0], -torch.arange(1, d_state + 1, dtype=torch.float32))  # S4D-real init
    dt = torch.nn.functional.softplus(block.dt_proj.bias)
    assert dt.min() >= 1e-4 * 0.99 and dt.max() <= 0.1 * 1.01


def test_mamba_streams_chunk_by_chunk_and_step_by_step_like_one_pass():
    torch.manual_seed(0)
    block = Mamba(32).double()
    x = torch.randn(2, 40, 32, dtype=torch.float64)
    full, final = block(x)
    state, pieces = None, []
    for a, b in [(0, 1), (1, 3), (3, 20), (20, 40)]:
        y, state = block(x[:, a:b], state)
        pieces.append(y)
    assert torch.allclose(torch.cat(pieces, 1), full, atol=1e-12)
    assert torch.allclose(state[1], final[1], atol=1e-12)
    state, steps = block.initial_state(2), []
    for t in range(40):
        y, state = block.step(x[:, t], state)
        steps.append(y)
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-12)
    assert torch.allclose(state[1], final[1], atol=1e-12) and torch.allclose(state[0], final[0], atol=1e-12)
    stack = MambaStack(32, 2).double()
    full, _ = stack(x)
    state, steps = None, []
    for t in range(40):
        y, state = stack.step(x[:, t], state)
        steps.append(y)
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-12)


@pytest.mark.skipif(not cuda_kernels_available(), reason="needs a CUDA GPU with mamba_ssm installed (requirements-gpu.txt)")
def test_cuda_kernels_and_the_cpu_scan_agree_from_one_state_dict():  # pragma: no cover - GPU machines
    from mamba_ssm.modules.mamba_simple import Mamba as CudaMamba

    ours = Mamba(64).cuda()
    theirs = CudaMamba(64).cuda()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 300, 64, device="cuda")
    ours_cpu = Mamba(64)
    ours_cpu.load_state_dict(ours.state_dict())
    assert torch.allclose(theirs(x).cpu(), ours_cpu(x.cpu())[0], atol=1e-3)
    # one frame at a time, as generation runs: the same states in the same layout
    state = ours.initial_state(2)
    conv, ssm = (s.clone() for s in state)
    with torch.no_grad():
        for t in range(20):
            mine, state = ours.step(x[:, t], state)
            out, conv, ssm = theirs.step(x[:, t : t + 1], conv, ssm)
            assert torch.allclose(mine, out[:, 0], atol=1e-4), t
    assert torch.allclose(state[1], ssm, atol=1e-4) and torch.allclose(state[0], conv, atol=1e-5)


def test_vector_quantizer_losses_perplexity_and_dead_code_restart():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 16, beta=0.5, dead_after=2)
    z = torch.randn(4, 10, 8, requires_grad=True)
    q = vq(z)
    assert torch.allclose(q.quantized.detach(), vq.lookup(q.indices).detach(), atol=1e-6)
    assert torch.allclose(q.commitment_loss, 0.5 * ((z - vq.lookup(q.indices)) ** 2).mean())
    q.quantized.sum().backward()
    assert torch.allclose(z.grad, torch.ones_like(z))  # straight-through
    with torch.no_grad():
        vq.codebook[3] = 100.0  # a code nothing is near
    far_before = vq.codebook[3].clone()
    for _ in range(3):
        vq(torch.randn(4, 10, 8))
    assert not torch.equal(vq.codebook[3], far_before)  # restarted near the data
    assert vq.codebook[3].abs().max() < 10
    assert 1.0 <= float(q.perplexity) <= 16.0


def test_multi_rate_levels_sum_to_the_latent_and_decode_separately():
    torch.manual_seed(0)
    mq = MultiRateQuantizer(8, 32, factors=(4, 2, 1)).eval()
    z = torch.randn(2, 16, 8)
    contributions, indices, stats = mq(z)
    assert [i.shape[1] for i in indices] == [4, 8, 16]
    assert all(c.shape == z.shape for c in contributions)
    rebuilt = mq.contributions_from_indices(indices)
    for a, b in zip(contributions, rebuilt):
        assert torch.allclose(a, b, atol=1e-6)
    # adding levels brings the sum closer to the latent
    errors = [((combine(contributions[: k + 1] + [torch.zeros_like(z)] * (2 - k)) - z) ** 2).mean() for k in range(3)]
    assert errors[0] > errors[1] > errors[2]
    with pytest.raises(ValueError):
        MultiRateQuantizer(8, 32, factors=(1, 2, 4))


def test_part_vqvae_round_trip_shapes_and_prior_loss_terms():
    vq = PartVQVAE(78, VQConfig(vq_hidden=32, latent_dim=16, codebook_size=32))
    x = torch.randn(3, 32, 78)
    x_hat, indices, contributions, stats = vq(x)
    assert x_hat.shape == x.shape and [i.shape for i in indices] == [(3, 2), (3, 4), (3, 8)]
    losses = prior_loss(x, x_hat, stats, velocity_weight=0.5, acceleration_weight=0.25)
    expected = (
        losses["reconstruction"] + losses["codebook"] + losses["commitment"] + 0.5 * losses["velocity"] + 0.25 * losses["acceleration"]
    )
    assert torch.allclose(losses["total"], expected)
    assert torch.allclose(losses["reconstruction"], ((x_hat - x) ** 2).mean())
    with pytest.raises(ValueError, match="multiple of 16"):
        vq.encode(torch.randn(1, 30, 78))


def test_stage1_position_terms_add_the_upper_bodys_joint_errors_in_centimetres():
    from granumamba.motion import PART_DIMS, axis_angle_to_6d

    torch.manual_seed(0)
    model = GranuMamba(TINY).eval()  # eval: no dead-code restarts between the two calls
    batch = {p: torch.randn(2, 32, d) * 0.1 for p, d in PART_DIMS.items()}
    plain = stage1_loss(model, batch)
    weighted = stage1_loss(model, batch, position_weight=0.5, position_velocity_weight=2.0, position_acceleration_weight=3.0)
    assert "upper/position" not in plain and weighted["upper/position"] > 0
    extra = 0.5 * weighted["upper/position"] + 2.0 * weighted["upper/position_velocity"] + 3.0 * weighted["upper/position_acceleration"]
    assert torch.allclose(weighted["total"], plain["total"] + extra)
    upper = axis_angle_to_6d(torch.zeros(1, 4, 13, 3)).reshape(1, 4, 78)
    assert [float(v) for v in position_losses(model, upper, upper)] == [0.0, 0.0, 0.0]
    bent = upper.clone()
    bent[:, 2:, 60:66] = axis_angle_to_6d(torch.tensor([0.0, 0.0, 0.1]))  # the right elbow (index 10 of 13), last 2 frames
    position, velocity, acceleration = position_losses(model, bent, upper)
    # 0.1 rad at the elbow moves the wrist (25 cm away) 2.5 cm: (2.5 cm)^2 / (22 joints x 3 axes x 2) = 0.047
    assert float(position) == pytest.approx(2.5**2 / 132, rel=0.02)
    assert float(velocity) == pytest.approx(2.5**2 / (66 * 3), rel=0.02)  # one step of 2.5 cm among 3 frame pairs
    assert float(acceleration) == pytest.approx(2.5**2 / 66, rel=0.02)  # +2.5 then -2.5 cm/frame^2: both of 2 frame triples


def test_stage1_foot_contact_term_is_the_planted_feets_sliding_in_centimetres():
    """The lower part alone places the feet as forward kinematics of the merged motion does; the
    contact term is the decoded planted feet's squared horizontal speed (cm per frame), zero for
    a still foot and for a foot the ground truth has in the air."""
    import numpy as np

    from granumamba.motion import PART_DIMS, Motion, merge_parts, split_parts
    from granumamba.motion.parts import FOOT_JOINTS, lower_body_feet
    from granumamba.motion.rotations import axis_angle_to_matrix
    from granumamba.motion.skeleton import forward_kinematics

    torch.manual_seed(0)
    frames = 32
    poses = torch.randn(frames, 165) * 0.2
    trans = torch.cumsum(torch.randn(frames, 3) * 0.01, 0) + torch.tensor([0.3, 0.9, -0.2])
    motion = Motion(poses.numpy(), trans.numpy(), np.zeros((frames, 100)))
    parts = split_parts(motion)
    start = (float(trans[0, 0] - parts["lower"][0, -3]), float(trans[0, 2] - parts["lower"][0, -1]))
    merged = merge_parts(parts, start)
    positions = forward_kinematics(
        axis_angle_to_matrix(torch.as_tensor(merged.poses).reshape(frames, 55, 3)), torch.as_tensor(merged.trans, dtype=torch.float32)
    )[0]
    feet = lower_body_feet(parts["lower"]) + torch.tensor([start[0], 0.0, start[1]])
    assert torch.allclose(feet, positions[:, list(FOOT_JOINTS)], atol=1e-4)

    model = GranuMamba(TINY).eval()
    still = Motion(np.zeros((frames, 165), np.float32), np.tile([0.0, 0.9, 0.0], (frames, 1)), np.zeros((frames, 100)))
    lower = split_parts(still)["lower"][None]  # every foot joint planted: contacts 1
    assert float(lower[0, :, 54:58].min()) == 1.0
    sliding = lower.clone()
    sliding[..., -3] = 0.02  # the root, and so each planted foot, 2 cm a frame along x
    normalize = lambda x: model.normalizer.normalize("lower", x)  # noqa: E731
    assert float(foot_contact_loss(model, normalize(lower), normalize(lower))) == pytest.approx(0.0, abs=1e-6)
    assert float(foot_contact_loss(model, normalize(lower), normalize(sliding))) == pytest.approx(4.0, rel=1e-3)
    airborne = lower.clone()
    airborne[..., 54:58] = 0.0  # the truth has the feet in the air: sliding costs nothing
    assert float(foot_contact_loss(model, normalize(airborne), normalize(sliding))) == pytest.approx(0.0, abs=1e-6)
    batch = {p: torch.randn(2, 32, d) * 0.1 for p, d in PART_DIMS.items()}
    plain, weighted = stage1_loss(model, batch), stage1_loss(model, batch, foot_contact_weight=0.5)
    assert "lower/foot_contact" not in plain
    assert torch.allclose(weighted["total"], plain["total"] + 0.5 * weighted["lower/foot_contact"])


def test_the_coarse_split_term_teaches_the_other_levels_the_motion_without_its_slow_component():
    """stage1_loss's coarse split term: the upper part decoded with the coarse gain at 0 against
    the batch's "upper_without_coarse" (feature MSE plus the position weight times the joints'
    MSE in cm), added to the total at its weight. Trained with it, what the finer levels decode
    alone comes nearer the motion without its slow component than trained without it."""
    torch.manual_seed(0)
    frames, batch_size = 64, 8
    t = torch.arange(frames) / 30.0

    def batch_of(seed):
        g = torch.Generator().manual_seed(seed)
        phase = torch.rand(batch_size, 1, 1, generator=g) * 6.28
        slow = torch.sin(2 * math.pi * 0.4 * t[None, :, None] + phase) * torch.linspace(0.5, 1.5, 78)  # a slow sway of every channel
        fast = torch.sin(2 * math.pi * 2.5 * t[None, :, None] + 2 * phase) * torch.linspace(1.0, -1.0, 78) * 0.5
        parts = {p: torch.randn(batch_size, frames, d, generator=g) * 0.05 for p, d in PART_DIMS.items()}
        rest = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).repeat(13)  # each joint's 6D rotation at rest, so that FK is defined
        parts["upper"] = rest + 0.3 * (slow + fast)
        parts["upper_without_coarse"] = rest + 0.3 * fast
        return parts

    model = GranuMamba(TINY)
    probe = batch_of(99)
    plain = stage1_loss(model, probe, position_weight=0.1)
    weighted = stage1_loss(model, probe, position_weight=0.1, coarse_split_weight=0.5)
    assert "upper/coarse_split" not in plain and "hands/coarse_split" not in weighted
    assert torch.allclose(weighted["total"], plain["total"] + 0.5 * weighted["upper/coarse_split"])
    _, _, contributions, _ = model.vqvae["upper"](probe["upper"])
    decoded = model.vqvae["upper"].decode(contributions, (0.0, 1.0, 1.0))
    by_hand = torch.nn.functional.mse_loss(decoded, probe["upper_without_coarse"])
    by_hand = by_hand + 0.1 * position_losses(model, probe["upper_without_coarse"], decoded)[0]
    assert torch.allclose(coarse_split_loss(model, "upper", contributions, probe["upper_without_coarse"], 0.1), by_hand)

    def trained(weight):
        torch.manual_seed(0)
        model = GranuMamba(TINY)
        optimizer = torch.optim.Adam(model.vqvae.parameters(), lr=3e-3)
        for step in range(120):
            loss = stage1_loss(model, batch_of(step), coarse_split_weight=weight)["total"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            _, _, contributions, _ = model.vqvae["upper"](probe["upper"])
            rest = model.vqvae["upper"].decode(contributions, (0.0, 1.0, 1.0))
            return float(torch.nn.functional.mse_loss(rest, probe["upper_without_coarse"]))

    without_term, with_term = trained(0.0), trained(1.0)
    assert with_term < 0.5 * without_term, (with_term, without_term)


def test_a_gain_of_zero_removes_exactly_that_level():
    torch.manual_seed(1)
    model = GranuMamba(TINY).eval()
    vq = model.vqvae["hands"]
    indices = [torch.randint(0, 32, (1, n)) for n in (10, 20, 40)]
    with torch.no_grad():
        without_fine = model.decode_part("hands", indices, (1.0, 1.0, 0.0))
        c = vq.quantizer.contributions_from_indices(indices)
        expected = vq.decode([c[0] + c[1], torch.zeros_like(c[2])])[0]
        doubled = model.decode_part("hands", indices, (0.0, 2.0, 0.0))
    assert torch.allclose(without_fine, expected, atol=1e-5)
    assert torch.allclose(doubled, vq.decode([torch.zeros_like(c[0]), 2 * c[1], torch.zeros_like(c[2])])[0], atol=1e-5)


@pytest.mark.parametrize("causal, history", [(False, 1), (True, 1), (False, 3), (True, 3)])
def test_generation_is_deterministic_for_a_seed_and_streams_exactly(causal, history):
    torch.manual_seed(2)
    model = GranuMamba(TINY | {"causal": causal, "own_history": history}).eval()
    audio = torch.randn(333, 68)
    words = torch.randint(0, 4, (333,))
    one = model.generate(audio, words, rng_seed=5, chunk_frames=None)
    assert all(v.shape[0] == 333 for v in one.values())
    for chunk in (16, 48, 160):
        streamed = model.generate(audio, words, rng_seed=5, chunk_frames=chunk, decode_overlap=24)
        for part in one:
            assert torch.allclose(one[part], streamed[part], atol=1e-5), (chunk, part)
    other = model.generate(audio, words, rng_seed=6)
    assert any(not torch.allclose(one[p], other[p]) for p in one)
    greedy = [model.generate(audio, words, temperature=0, rng_seed=s)["upper"] for s in (1, 2)]
    assert torch.equal(greedy[0], greedy[1])


def test_each_level_sees_where_in_its_span_the_speech_falls():
    """Swapping the two fine steps under the first mid step changes what the coarse and mid
    levels predict there (an average of their conditioning would hide the order)."""
    torch.manual_seed(4)
    model = GranuMamba(TINY).eval()
    generator = model.generator
    cond = torch.randn(1, 8, TINY["d_model"])  # 8 fine steps: 2 coarse, 4 mid
    swapped = cond.clone()
    swapped[:, [0, 1]] = cond[:, [1, 0]]
    with torch.no_grad():
        logits = [generator.run(c, StepSampling(codebook_arrays(model)))[0] for c in (cond, swapped)]
    for level in (0, 1):  # coarse, mid
        assert not torch.allclose(logits[0][level][:, :, 0], logits[1][level][:, :, 0], atol=1e-4), level


def test_seed_frames_fix_the_opening_codes():
    torch.manual_seed(3)
    model = GranuMamba(TINY).eval()
    seed_parts = {p: torch.randn(128, d) for p, d in [("upper", 78), ("hands", 180), ("lower", 61), ("face", 106)]}
    indices, _ = model.teacher_codes({p: x[None] for p, x in seed_parts.items()})
    out = model.generate(torch.randn(192, 68), seed_parts=seed_parts, rng_seed=0)
    recon = model.decode_part("upper", [i[:, 0] for i in indices], (1, 1, 1))
    assert torch.allclose(out["upper"][:16], recon[:16], atol=1e-4)  # far enough inside the seed span that no generated code reaches it


def test_save_and_load_give_the_same_outputs(tmp_path):
    torch.manual_seed(4)
    model = GranuMamba(TINY).eval()
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "model.safetensors"]  # and no temporary file
    loaded = GranuMamba.from_pretrained(tmp_path / "m")
    audio = torch.randn(96, 68)
    a, b = model.generate(audio, rng_seed=1), loaded.generate(audio, rng_seed=1)
    assert all(torch.equal(a[p], b[p]) for p in a)
    assert loaded.vocab.words == model.vocab.words and loaded.config == model.config


def test_damaged_or_pickled_checkpoints_are_refused(tmp_path):
    model = GranuMamba(TINY)
    model.save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="damaged"):
        GranuMamba.from_pretrained(tmp_path / "m")
    weights.unlink()
    torch.save(model.state_dict(), tmp_path / "m" / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="no model.safetensors"):
        GranuMamba.from_pretrained(tmp_path / "m")
    weights.write_bytes((tmp_path / "m" / "pytorch_model.bin").read_bytes())  # a pickle under the right name
    with pytest.raises(ModelLoadError, match="damaged or not a safetensors"):
        GranuMamba.from_pretrained(tmp_path / "m")
    with pytest.raises(ModelLoadError, match="not a model folder"):
        GranuMamba.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "m" / "config.json").write_text('{"d_model": 32, "surprise": 1}')
    with pytest.raises(ModelLoadError, match="surprise"):
        GranuMamba.from_pretrained(tmp_path / "m")
    wider = GranuMamba({**TINY, "d_model": 48})  # a generator of another size than config.json says
    wider.save_pretrained(tmp_path / "wider")
    config = tmp_path / "wider" / "config.json"
    config.write_text(config.read_text().replace('"d_model": 48', '"d_model": 32'))
    with pytest.raises(ModelLoadError, match="does not match config.json .*size mismatch"):
        GranuMamba.from_pretrained(tmp_path / "wider")
    priors = GranuMamba.from_pretrained(tmp_path / "wider", motion_priors_only=True)  # stage 1's part: the generator is not read
    assert all(torch.equal(v, wider.state_dict()[k]) for k, v in priors.state_dict().items() if k.startswith("vqvae."))


def test_an_unreachable_hub_repo_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="cannot reach the Hub|no config.json"):
        GranuMamba.from_pretrained("granumamba/does-not-exist")


def teacher_inputs(model):
    """The generator, conditioning of 8 fine steps, the codebooks, and random teacher code
    indices per level with their code vectors."""
    generator = model.generator
    cond = torch.randn(1, 8, TINY["d_model"])
    codebooks = codebook_arrays(model)
    indices = [torch.randint(0, TINY["codebook_size"], (1, generator.parts, 8 // f)) for f in generator.factors]
    codes = [torch.from_numpy(book[np.arange(generator.parts)[:, None], i[0].numpy()])[None] for book, i in zip(codebooks, indices)]
    return generator, cond, codebooks, indices, codes


@pytest.mark.parametrize("causal, history", [(False, 1), (True, 1), (False, 3), (True, 3)])
def test_teacher_forced_pass_matches_step_by_step_generation_and_sees_the_previous_codes(causal, history):
    """Training's one pass over shifted teacher codes and inference's step-by-step loop give the
    same logits when inference chooses the teacher codes, and a step's prediction depends on the
    codes its level chose in the `own_history` steps before (and not on later or older ones)."""
    torch.manual_seed(6)
    model = GranuMamba(TINY | {"causal": causal, "own_history": history}).eval()
    generator, cond, codebooks, indices, codes = teacher_inputs(model)
    with torch.no_grad():
        taught = generator.run(cond, teacher_codes=codes)[0]
        sampling = StepSampling(codebooks, fixed=[i.numpy() for i in indices])  # every step's code fixed to the teacher's
        stepped = generator.run(cond, sampling)[0]
        for level in range(len(codes)):
            assert torch.allclose(taught[level], stepped[level], atol=1e-5), level
            assert torch.equal(sampling.indices[level], indices[level])
        changed = [c.clone() for c in codes]
        changed[2][:, :, 3] += 1.0  # the fine level's code at step 3
        after = generator.run(cond, teacher_codes=changed)[0][2]
    assert torch.allclose(after[:, :, :4], taught[2][:, :, :4], atol=1e-6)  # steps up to 3 cannot see it
    for step in range(4, 4 + history):  # the next `history` steps see it
        assert not torch.allclose(after[:, :, step], taught[2][:, :, step], atol=1e-4), step
    assert torch.allclose(after[:, :, 4 + history :], taught[2][:, :, 4 + history :], atol=1e-6)  # later ones no longer
    with pytest.raises(ValueError, match="either teacher_codes or sampling"):
        generator.run(cond)


def test_with_own_coarser_the_finer_levels_learn_from_the_coarser_levels_own_samples():
    """stage2_loss's `own_coarser`: the windows it picks give the finer levels the code the
    coarser level samples from its own logits (as at inference), not the teacher's; at 0 they
    see the teacher's."""
    from granumamba.model.losses import stage2_loss
    from granumamba.motion import PART_DIMS

    torch.manual_seed(8)
    model = GranuMamba(TINY | {"causal": True}).eval()
    frames = 2 * model.frame_multiple
    batch = {p: torch.randn(2, frames, d) * 0.1 for p, d in PART_DIMS.items()}
    batch |= {"audio": torch.randn(2, frames, 68), "words": torch.zeros(2, frames, dtype=torch.long), "speaker": torch.tensor([0, 2])}
    generator = model.generator
    with torch.no_grad():
        generator.logit_bias[0][:, :, 5] = 1e4  # the coarse level samples code 5, whatever its teacher,
        generator.logit_bias[1][:, :, 9] = 1e4  # and the mid level code 9
        indices, codes = model.teacher_codes({p: batch[p] for p in PART_DIMS})
    assert (indices[0] != 5).any() and (indices[1] != 9).any()
    options = {"word_dropout": 0.0, "seed_probability": 0.0, "own_code_dropout": 0.0}
    own = stage2_loss(model, batch, own_coarser=1.0, **options)
    teacher = stage2_loss(model, batch, own_coarser=0.0, **options)
    # The same losses by hand: the teacher's codes, the coarse level passing on code 5, the mid code 9.
    sampled = [model.lookup_codes(level, torch.full_like(indices[level], k)) for level, k in ((0, 5), (1, 9))]
    audio, words = generator.shift_lookahead(batch["audio"], batch["words"])
    cond = generator.condition(audio, words, batch["speaker"], torch.ones(2))
    passed = lambda level, logits, taught: sampled[level] if level < 2 else taught  # noqa: E731
    with torch.no_grad():
        by_hand = generator.run(cond, teacher_codes=codes, pass_on=passed)[0]
        plain = generator.run(cond, teacher_codes=codes)[0]
    for level, name in ((1, "mid"), (2, "fine")):
        ce = torch.nn.functional.cross_entropy(by_hand[level].reshape(-1, TINY["codebook_size"]), indices[level].reshape(-1))
        plain_ce = torch.nn.functional.cross_entropy(plain[level].reshape(-1, TINY["codebook_size"]), indices[level].reshape(-1))
        assert torch.isclose(own[f"ce_{name}"], ce, atol=1e-5), name
        assert torch.isclose(teacher[f"ce_{name}"], plain_ce, atol=1e-5), name
    assert not torch.isclose(own["ce_fine"], teacher["ce_fine"], atol=1e-4)
    assert torch.isclose(own["ce_coarse"], teacher["ce_coarse"], atol=1e-6)  # the coarse level's own loss is the teacher's


def test_the_step_loop_follows_weights_changed_in_place():
    """The step loop's copies of the heads' weights (kept between spans) are renewed when a
    weight changes in place, as an optimiser step or a load changes it."""
    torch.manual_seed(8)
    model = GranuMamba(TINY).eval()
    generator, cond, codebooks, indices, codes = teacher_inputs(model)
    with torch.no_grad():
        before = generator.run(cond, StepSampling(codebooks, fixed=[i.numpy() for i in indices]))[0]
        generator.logit_weight[2].add_(0.5)
        generator.head_mix[1][1].weight.mul_(-1)
        taught = generator.run(cond, teacher_codes=codes)[0]
        stepped = generator.run(cond, StepSampling(codebooks, fixed=[i.numpy() for i in indices]))[0]
    for level in (1, 2):
        assert not torch.allclose(before[level], taught[level], atol=1e-3)
        assert torch.allclose(stepped[level], taught[level], atol=1e-5)


def test_weights_with_nan_are_refused_at_load(tmp_path):
    from safetensors.torch import load_file, save_file

    GranuMamba(TINY).save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    name = next(k for k in tensors if k.startswith("generator.") and tensors[k].is_floating_point())
    tensors[name][..., 0] = float("nan")
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(ModelLoadError, match="NaN or infinite"):
        GranuMamba.from_pretrained(tmp_path)


@pytest.mark.parametrize("causal", [False, True])
def test_decoding_a_span_of_frames_equals_cutting_the_whole_decoding(causal):
    from granumamba.model.sampler import decode, sample_codes

    model = GranuMamba(TINY | {"causal": causal, "split_decoder": causal}).eval()
    codes = sample_codes(model, torch.randn(200, model.config.feature_dim), rng_seed=1)
    whole = decode(model, codes)
    for start, stop in ((0, 64), (64, 144), (128, 200), (176, 500), (3, 20), (61, 133)):
        piece = decode(model, codes, frames=(start, stop))
        for part, x in whole.items():
            assert torch.allclose(piece[part], x[start:stop], atol=1e-6), (part, start, stop)


def test_a_causal_generator_steps_a_fine_step_at_a_time_and_sees_no_later_speech():
    """With `causal`, generation advances by any number of fine steps with the one-pass codes,
    and a level's step depends on the conditioning up to its first fine step only, so a coarse
    code can be sampled as soon as its block's first fine step is in. The default generator
    advances by whole blocks and refuses a part of one."""
    from granumamba.model.sampler import CodeSampler

    torch.manual_seed(7)
    model = GranuMamba(TINY | {"causal": True}).eval()
    audio = torch.randn(1, 96, model.config.feature_dim)
    words = torch.zeros(1, 96, dtype=torch.long)

    def codes(splits, features=audio):
        sampler, out, start = CodeSampler(model, rng_seed=3), [], 0
        for stop in [*splits, 96]:
            out.append(sampler.span(features[:, start:stop], words[:, start:stop]))
            start = stop
        return [torch.cat(level, dim=2) for level in zip(*out)]

    one = codes([])
    assert [c.shape[2] for c in one] == [6, 12, 24]
    for splits in ([4, 8, 12, 16, 20, 24, 28], [12, 20, 52], [4, 68]):
        assert all(torch.equal(a, b) for a, b in zip(one, codes(splits))), splits
    # later speech: from frame 20 on (fine step 5) changes no code of a step that begins before it
    changed = audio.clone()
    changed[:, 20:] = torch.randn_like(changed[:, 20:])
    other = codes([], changed)
    for level, factor in enumerate(model.config.factors):
        begins = torch.arange(one[level].shape[2]) * factor  # each step's first fine step
        assert torch.equal(one[level][:, :, begins < 5], other[level][:, :, begins < 5]), level
    assert not torch.equal(one[2], other[2])
    with pytest.raises(ValueError, match="multiple of 16"):
        CodeSampler(GranuMamba(TINY).eval()).span(audio[:, :4], words[:, :4])


def test_streams_split_over_threads_give_each_rows_own_result(monkeypatch):
    """At inference a level's rows run in groups on threads; each row's output and state are
    what the whole batch in one call gives, and generation does not depend on the worker count."""
    from granumamba.model import generator as generator_module
    from granumamba.model import threads

    torch.manual_seed(8)
    model = GranuMamba(TINY).eval()
    gen = model.generator
    x = torch.randn(6, 20, TINY["d_model"])  # at least PARALLEL_STEPS steps: split
    with torch.no_grad():
        whole, whole_state = gen.local_streams[1](x, None)
        monkeypatch.setattr(generator_module, "WORKERS", 3)
        monkeypatch.setattr(threads, "WORKERS", 3)
        with threads.one_thread():
            split, split_state = gen._local_stream(1, x, None)
            again, _ = gen._local_stream(1, x, split_state)  # carrying a split state
        reference, _ = gen.local_streams[1](x, whole_state)
    assert torch.allclose(split, whole, atol=1e-6)
    for (c1, s1), (c2, s2) in zip(split_state, whole_state):
        assert torch.allclose(c1, c2, atol=1e-6) and torch.allclose(s1, s2, atol=1e-6)
    assert torch.allclose(again, reference, atol=1e-6)
    audio = torch.randn(96, 68)
    many = model.generate(audio, rng_seed=3)
    monkeypatch.setattr(generator_module, "WORKERS", 1)
    monkeypatch.setattr(threads, "WORKERS", 1)
    one = model.generate(audio, rng_seed=3)
    assert all(torch.allclose(many[p], one[p], atol=1e-5) for p in one)
    monkeypatch.setattr(threads, "WORKERS", 2)
    before = torch.get_num_threads()
    with threads.one_thread():
        with pytest.raises(ZeroDivisionError):
            threads.in_threads(lambda i: 1 / i, [1, 0])
        assert threads.in_threads(lambda i: i * i, range(5)) == [0, 1, 4, 9, 16]
    assert torch.get_num_threads() == before


def test_low_pass_keeps_slow_motion_and_removes_fast_motion():
    t = torch.arange(150) / 30.0
    slow, fast = torch.sin(2 * math.pi * 0.5 * t), torch.sin(2 * math.pi * 8.0 * t)
    smoothed = low_pass(torch.stack([slow, fast], -1)[None], sigma=2.0)[0]
    assert smoothed.shape == (150, 2)
    inside = slice(8, -8)  # beyond the kernel's reach of the repeated ends
    assert float((smoothed[inside, 0] - slow[inside]).abs().max()) < 0.03
    assert float(smoothed[inside, 1].abs().max()) < 0.01
    assert low_pass(torch.ones(1, 5, 3), sigma=3.0).allclose(torch.ones(1, 5, 3))  # shorter than the kernel: edges repeated


def _fast_share(x: torch.Tensor, low: float = 5.0) -> float:
    """Share of a (T, dims) motion's energy at `low` Hz and above, at 30 fps (Hann-windowed, so
    that the jump from the last frame to the first does not leak into every band)."""
    spectrum = torch.fft.rfft((x - x.mean(0)) * torch.hann_window(x.shape[0])[:, None], dim=0).abs() ** 2
    freqs = torch.fft.rfftfreq(x.shape[0], 1 / 30)
    return float(spectrum[freqs >= low].sum() / spectrum.sum())


@pytest.mark.parametrize("causal, slow_cutoff", [(False, 0.0), (False, 3.5), (True, 0.0)])
def test_split_decoder_leaves_the_fast_motion_to_the_fine_level_and_scales_it_exactly(causal, slow_cutoff):
    """With `split_decoder`, any coarse and mid codes decode to motion without components
    faster than its low-pass passes (the mid level's Nyquist rate, 1.9 Hz, or `slow_cutoff`; the
    fine slider then moves only what the fine level adds), and the fine level's motion is its
    gain times its motion at gain 1. The joint decoder of the same codes has neither."""
    torch.manual_seed(3)
    split = GranuMamba(TINY | {"split_decoder": True, "causal": causal, "slow_cutoff": slow_cutoff}).eval()
    joint = GranuMamba(TINY | {"causal": causal}).eval()
    indices = [torch.randint(0, 32, (1, n)) for n in (16, 32, 64)]  # 256 frames of random codes
    with torch.no_grad():
        decoded = {g: split.decode_part("hands", indices, (1.0, 1.0, g)) for g in (0.0, 0.5, 1.0, 2.0)}
        joint_slow = joint.decode_part("hands", indices, (1.0, 1.0, 0.0))
    if not causal:  # a causal split decoder has no low-pass (vqvae.py)
        cutoff = slow_cutoff or 30 / 16  # the mid level's Nyquist rate: a mid code every 8 frames
        fast = 5.0 * cutoff / (30 / 16)  # where the response is 2^-7 (amplitude)
        assert _fast_share(decoded[0.0], fast) < 1e-6 < 1e-5 < _fast_share(joint_slow, fast)
        if slow_cutoff:  # a higher cutoff lets through what the default one stops
            default = GranuMamba(TINY | {"split_decoder": True}).eval()
            default.load_state_dict(split.state_dict())
            with torch.no_grad():
                narrower = default.decode_part("hands", indices, (1.0, 1.0, 0.0))
            assert _fast_share(narrower, 2.5) < 0.25 * _fast_share(decoded[0.0], 2.5)
    assert _fast_share(decoded[1.0]) > 1e-3  # the fine level moves fast
    fine = decoded[1.0] - decoded[0.0]
    assert float(fine.abs().max()) > 1e-3
    for g in (0.5, 2.0):
        assert torch.allclose(decoded[g] - decoded[0.0], g * fine, atol=1e-5)
    assert "vqvae.hands.fine_decoder.0.weight" in split.state_dict()
    assert not any(".fine_decoder." in k for k in joint.state_dict())
    assert not any(k.startswith("vqvae.") and "fine_decoder" in k and k.endswith(".bias") for k in split.state_dict())


@pytest.mark.parametrize("coarse_context", [False, True])
def test_level_bands_give_each_level_a_band_of_its_own_and_scale_the_coarse_and_fine_levels_exactly(tmp_path, coarse_context):
    """With `level_bands`, any codes decode to a coarse level without motion faster than its low-pass
    passes (its Nyquist rate, 0.94 Hz), a mid level without that slow part or what is faster than
    1.9 Hz, and a fine level without the slow part; the three add up to the whole. The coarse
    and fine levels' motion is their gain times their motion at gain 1 (the sliders then move
    the slow posture and the fast motion by the gain itself), a gain of 0 leaves its level out
    exactly, and the option is saved and checked; all of it whether or not the mid decoder reads
    the coarse codes as its context (`coarse_context`)."""
    torch.manual_seed(3)
    model = GranuMamba(TINY | {"split_decoder": True, "level_bands": True, "coarse_context": coarse_context}).eval()
    indices = [torch.randint(0, 32, (1, n)) for n in (16, 32, 64)]  # 256 frames of random codes

    def decoded(gains):
        with torch.no_grad():
            return model.decode_part("hands", indices, gains)

    coarse, mid, fine = decoded((1.0, 0.0, 0.0)), decoded((0.0, 1.0, 0.0)), decoded((0.0, 0.0, 1.0))
    assert torch.allclose(coarse + mid + fine, decoded((1.0, 1.0, 1.0)), atol=1e-5)
    assert min(float(level.std()) for level in (coarse, mid, fine)) > 1e-3
    assert _fast_share(coarse, 5 * 30 / 32) < 1e-6 < 1e-3 < _fast_share(coarse, 0.3)  # 2^-25 of the power at 5 times the cutoff
    assert _fast_share(mid, 5 * 30 / 16) < 1e-6
    for level in (mid, fine):  # none of the slow posture: little under 0.3 Hz
        assert _fast_share(level, 0.3) > 0.95
    # nor a posture of their own: codes held still decode to a still pose, all the coarse level's
    held = [torch.full_like(i, 5) for i in indices]
    with torch.no_grad():
        still = [model.decode_part("hands", held, gains)[64:-64] for gains in ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))]
    assert float(still[0].abs().max()) > 1e-3 and float((still[0] - still[0][0]).abs().max()) < 1e-5
    assert max(float(s.abs().max()) for s in still[1:]) < 1e-5
    assert _fast_share(fine, 3.0) > _fast_share(mid, 3.0)
    other_coarse = [torch.randint(0, 32, (1, 16))] + indices[1:]  # the mid level hears them with coarse_context only
    with torch.no_grad():
        other_mid = model.decode_part("hands", other_coarse, (0.0, 1.0, 0.0))
    assert (float((other_mid - mid).abs().max()) > 1e-3) == coarse_context
    if coarse_context:  # the mid gain then scales the mid band exactly, down to 0
        for g in (0.01, 0.5, 2.0):
            assert torch.allclose(decoded((1.0, g, 1.0)) - (coarse + fine), g * mid, atol=1e-5)
    for g in (0.5, 2.0):
        assert torch.allclose(decoded((g, 1.0, 1.0)) - (mid + fine), g * coarse, atol=1e-5)
        assert torch.allclose(decoded((1.0, 1.0, g)) - (coarse + mid), g * fine, atol=1e-5)
    assert float(decoded((0.0, 0.0, 0.0)).abs().max()) == 0.0
    assert not any(k.startswith("vqvae.") and "coarse_decoder" in k and k.endswith(".bias") for k in model.state_dict())
    model.save_pretrained(tmp_path / "bands")
    again = GranuMamba.from_pretrained(tmp_path / "bands")
    assert again.config.level_bands and all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    assert GranuMamba(TINY | {"split_decoder": True}).vqvae["hands"].coarse_decoder is None
    assert again.config.coarse_context == coarse_context
    for bad in ({"level_bands": True}, {"level_bands": True, "split_decoder": True, "causal": True}):
        with pytest.raises(ModelLoadError, match="level_bands needs split_decoder"):  # a config.json's too
            GranuMamba(TINY | bad)
    with pytest.raises(ModelLoadError, match="coarse_context needs level_bands"):
        GranuMamba(TINY | {"split_decoder": True, "coarse_context": True})
    with pytest.raises(ModelLoadError, match="level_bands"):
        GranuMambaConfig.from_dict({"level_bands": 1})


def test_coarse_cutoff_moves_the_band_between_the_coarse_and_mid_levels(tmp_path):
    """`coarse_cutoff` lowers where the coarse level's band ends and the mid level's begins: on
    the same weights and codes, the coarse level keeps nothing faster than five times the new
    cutoff, the mid level takes over the slow motion between it and the coarse Nyquist rate, the
    three still add up to the whole, the fine level is untouched, and a cutoff at or over the split decoder's is refused."""
    torch.manual_seed(4)
    default = GranuMamba(TINY | {"split_decoder": True, "level_bands": True}).eval()
    lowered = GranuMamba(TINY | {"split_decoder": True, "level_bands": True, "coarse_cutoff": 0.4}).eval()
    lowered.load_state_dict(default.state_dict())
    indices = [torch.randint(0, 32, (1, n)) for n in (16, 32, 64)]
    with torch.no_grad():
        levels = {
            name: [model.decode_part("hands", indices, gains) for gains in ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))]
            for name, model in (("default", default), ("lowered", lowered))
        }
        whole = lowered.decode_part("hands", indices, (1.0, 1.0, 1.0))
    assert torch.allclose(sum(levels["lowered"]), whole, atol=1e-5)
    assert _fast_share(levels["lowered"][0], 5 * 0.4) < 1e-6 < _fast_share(levels["default"][0], 5 * 0.4)
    slow_mid = {name: 1 - _fast_share(mid, 0.9) for name, (_, mid, _) in levels.items()}
    assert slow_mid["lowered"] > 2 * slow_mid["default"]
    assert torch.equal(levels["lowered"][2], levels["default"][2])  # the fine level's band is untouched
    lowered.save_pretrained(tmp_path / "lowered")
    assert GranuMamba.from_pretrained(tmp_path / "lowered").config.coarse_cutoff == 0.4
    for bad in ({"coarse_cutoff": 1.9}, {"coarse_cutoff": 3.0, "slow_cutoff": 2.5}):
        with pytest.raises(ModelLoadError, match="coarse_cutoff below"):
            GranuMamba(TINY | {"split_decoder": True, "level_bands": True} | bad)
    with pytest.raises(ModelLoadError, match="coarse_cutoff"):
        GranuMambaConfig.from_dict({"coarse_cutoff": -1})


def test_split_decoder_is_saved_and_a_config_without_it_loads_the_joint_one(tmp_path):
    model = GranuMamba(TINY | {"split_decoder": True})
    model.save_pretrained(tmp_path / "split")
    again = GranuMamba.from_pretrained(tmp_path / "split")
    assert again.config.split_decoder and again.vqvae["hands"].fine_decoder is not None
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    assert GranuMamba.from_pretrained(tmp_path / "split").vqvae["upper"].fine_decoder is not None
    assert GranuMamba(TINY).vqvae["upper"].fine_decoder is None
    with pytest.raises(ModelLoadError, match="split_decoder"):
        GranuMambaConfig.from_dict({"split_decoder": "yes"})


def test_slow_cutoff_is_saved_and_a_config_without_it_low_passes_at_the_mid_levels_nyquist_rate(tmp_path):
    model = GranuMamba(TINY | {"split_decoder": True, "slow_cutoff": 3.5})
    model.save_pretrained(tmp_path / "c")
    again = GranuMamba.from_pretrained(tmp_path / "c")
    assert again.config.slow_cutoff == 3.5
    # the Gaussian's response exp(-(2 pi f sigma / fps)^2 / 2) halves at the cutoff
    for m, cutoff in ((again, 3.5), (GranuMamba(TINY | {"split_decoder": True}), 30 / 16)):
        sigma = m.vqvae["hands"].slow_sigma
        assert math.exp(-((2 * math.pi * cutoff * sigma / 30) ** 2) / 2) == pytest.approx(0.5)
    assert again.vqvae["hands"].reach < GranuMamba(TINY | {"split_decoder": True}).vqvae["hands"].reach  # a narrower kernel
    for bad in (-1, 16, "3", True):
        with pytest.raises(ModelLoadError, match="slow_cutoff must be a number from 0 to 15"):
            GranuMambaConfig.from_dict({"slow_cutoff": bad})


def test_own_history_is_saved_and_a_config_without_it_loads_one_code_of_history(tmp_path):
    model = GranuMamba(TINY | {"own_history": 3}).eval()
    model.save_pretrained(tmp_path / "h3")
    again = GranuMamba.from_pretrained(tmp_path / "h3")
    assert again.config.own_history == 3 and again.generator.own_code_in[0].in_features == 3 * TINY["latent_dim"]
    audio = torch.randn(96, 68)
    a, b = model.generate(audio, rng_seed=1), again.generate(audio, rng_seed=1)
    assert all(torch.equal(a[p], b[p]) for p in a)
    assert GranuMambaConfig.from_dict({}).own_history == 1  # checkpoints from before it: the one code before
    for bad in (0, 17, 2.5, True):
        with pytest.raises(ModelLoadError, match="own_history must be a whole number from 1 to 16"):
            GranuMambaConfig.from_dict({"own_history": bad})


def hold_model(bias: float) -> GranuMamba:
    """A tiny model with a hold outcome whose logit is raised by `bias` at every level."""
    torch.manual_seed(7)
    model = GranuMamba(TINY | {"hold_speed": 0.15}).eval()
    with torch.no_grad():
        for b in model.generator.logit_bias:
            b[..., -1] += bias
    return model


def hold_run(model: GranuMamba, audio: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The generator's logits and its chosen indices, the likeliest outcome at every step."""
    generator, frames = model.generator, audio.shape[0]
    shifted = generator.shift_lookahead(audio[None], torch.zeros(1, frames, dtype=torch.long))
    with torch.no_grad():
        cond = generator.condition(*shifted, torch.tensor([1]))
        sampling = StepSampling(codebook_arrays(model))
        logits = generator.run(cond, sampling)[0]
    return logits, sampling.indices


def test_a_hold_keeps_the_code_before_and_streams_exactly():
    """The hold outcome (the logits' last column) chooses the code of the step before; at the
    very first step, with no code before, the likeliest code. Carried from span to span, so
    streaming gives the codes of one pass."""
    K = TINY["codebook_size"]
    audio = torch.randn(160, 68)
    logits, chosen = hold_run(hold_model(50.0), audio)  # every step a hold
    for level, indices in zip(logits, chosen):
        assert bool((level.argmax(-1) == K).all())
        assert torch.equal(indices, level[:, :, :1, :K].argmax(-1).expand_as(indices))
    logits, chosen = hold_run(hold_model(2.0), audio)  # a hold at some steps, a code at others
    holds = 0
    for level, indices in zip(logits, chosen):
        assert level.shape[-1] == K + 1
        hold = level.argmax(-1) == K
        holds += int(hold[:, :, 1:].sum())
        assert torch.equal(indices[:, :, 1:][hold[:, :, 1:]], indices[:, :, :-1][hold[:, :, 1:]])
        assert torch.equal(indices[~hold], level.argmax(-1)[~hold])
    assert 0 < holds < sum(i[:, :, 1:].numel() for i in chosen)  # both checks above were exercised
    model = hold_model(3.5)  # e^3.5 against 32 codes: holds about half the time
    one = sample_codes(model, audio, rng_seed=3, chunk_frames=None).indices
    repeats = sum(int((i[:, :, 1:] == i[:, :, :-1]).sum()) for i in one) / sum(i[:, :, 1:].numel() for i in one)
    assert 0.2 < repeats < 0.95
    for chunk in (16, 48):
        assert all(torch.equal(a, b) for a, b in zip(one, sample_codes(model, audio, rng_seed=3, chunk_frames=chunk).indices)), chunk


def test_the_hold_is_sampled_at_its_own_temperature():
    """With a hold outcome a step holds with the hold's probability at `hold_temperature` and
    otherwise takes a code at the temperature asked for (`StepSampling.hold_scale`, `scale`):
    how often the steps repeat the code before is what the logits give under that rule, and
    not what sampling every outcome at the codes' temperature would give."""
    model = hold_model(3.5)
    audio = torch.randn(1920, 68)
    generator = model.generator
    shifted = generator.shift_lookahead(audio[None], torch.zeros(1, audio.shape[0], dtype=torch.long))
    K = TINY["codebook_size"]
    rng = np.random.default_rng(0)
    steps = [level.shape[2] for level in hold_run(model, audio)[0]]
    for hold_t, t in ((1.0, 1.0), (0.3, 1.5), (2.0, 0.4)):
        with torch.no_grad():
            cond = generator.condition(*shifted, torch.tensor([1]))
            uniform = [rng.random((1, len(PART_NAMES), n)).astype(np.float32) for n in steps]
            sampling = StepSampling(codebook_arrays(model), None, uniform, 1 / t, 1 / hold_t)
            logits = generator.run(cond, sampling)[0]
        observed, expected, joint = [], [], []
        for level, indices in zip(logits, sampling.indices):
            before, now, step_logits = indices[..., :-1], indices[..., 1:], level[..., 1:, :].double()
            stay = step_logits.div(hold_t).softmax(-1)[..., K]
            same = step_logits[..., :K].div(t).softmax(-1).gather(-1, before[..., None])[..., 0]
            observed.append((now == before).double().flatten())
            expected.append((stay + (1 - stay) * same).flatten())
            all_at_t = step_logits.div(t).softmax(-1)
            joint.append((all_at_t[..., K] + all_at_t[..., :K].gather(-1, before[..., None])[..., 0]).flatten())
        observed, expected, joint = torch.cat(observed), torch.cat(expected), torch.cat(joint)
        spread = 4 * float((expected * (1 - expected)).sum().sqrt()) / observed.numel()
        assert abs(float(observed.mean() - expected.mean())) < spread, (hold_t, t)
        if hold_t != t:
            assert abs(float(observed.mean() - joint.mean())) > 3 * spread, (hold_t, t)


def test_each_level_is_sampled_at_its_share_of_the_temperature(tmp_path):
    """`level_temperature` samples each level at its share of the temperature. A share of 0
    takes the likeliest code at every step of its level (given the codes chosen before it);
    the coarser levels draw the same codes as with every share 1, since neither their inputs nor
    their noise depend on a finer level. It is saved with the model, and a config that does not
    give one share from 0 to 2 to each level is refused."""
    torch.manual_seed(7)
    model = GranuMamba(TINY).eval()
    K, frames = TINY["codebook_size"], 320
    audio = torch.randn(frames, 68)
    plain = sample_codes(model, audio, temperature=1.5, rng_seed=2).indices
    model.config.level_temperature = [1.0, 1.0, 0.0]
    cold_fine = sample_codes(model, audio, temperature=1.5, rng_seed=2).indices
    assert torch.equal(plain[0], cold_fine[0]) and torch.equal(plain[1], cold_fine[1])
    generator = model.generator
    shifted = generator.shift_lookahead(audio[None], torch.zeros(1, frames, dtype=torch.long))
    with torch.no_grad():
        cond = generator.condition(*shifted, torch.tensor([model.config.default_speaker]))
        for indices, fine_likeliest in ((cold_fine, True), (plain, False)):
            logits = generator.run(cond, StepSampling(codebook_arrays(model), fixed=[i.numpy() for i in indices]))[0]
            likeliest = torch.equal(indices[2], logits[2][..., :K].argmax(-1))
            assert likeliest == fine_likeliest
            assert not torch.equal(indices[0], logits[0][..., :K].argmax(-1))  # the coarse level still sampled
    model.save_pretrained(tmp_path / "levels")
    assert GranuMamba.from_pretrained(tmp_path / "levels").config.level_temperatures(1.5) == [1.5, 1.5, 0.0]
    assert GranuMambaConfig.from_dict({}).level_temperatures(1.5) == [1.5, 1.5, 1.5]  # checkpoints before it
    for bad in ([1.0, 1.0], [1.0, 1.0, 2.5], [1.0, -0.1, 1.0], [True, 1.0, 1.0], "warm", 1.0):
        with pytest.raises(ModelLoadError, match="level_temperature must be empty or a list of 3 numbers from 0 to 2"):
            GranuMambaConfig.from_dict({"level_temperature": bad})


def arm_motion(frames: int, stop: int) -> Motion:
    """The left elbow swinging fast until frame `stop`, then still at its last angle."""
    poses = np.zeros((frames, 165), np.float32)
    angle = np.sin(np.arange(frames) / 30 * 2 * math.pi * 2)
    angle[stop:] = angle[stop - 1]
    poses[:, 18 * 3 + 1] = angle  # left elbow, about its y axis
    return Motion(poses, np.zeros((frames, 3), np.float32), np.zeros((frames, 100), np.float32))


def test_the_teacher_holds_where_the_arms_are_still_and_carries_the_code_before():
    """`held_teacher`: the steps whose frames (and the move into them) have the elbows and
    wrists under `hold_speed` are taught as holds of the last moving step's code, in the upper
    part only; a window's first step never holds."""
    model = GranuMamba(TINY | {"hold_speed": 0.15}).eval()  # an untrained normaliser: normalised = raw
    K = TINY["codebook_size"]
    upper = split_parts(arm_motion(64, 32))["upper"][None].float()
    indices = [torch.randint(0, K, (1, len(PART_NAMES), 64 // (4 * f))) for f in model.config.factors]
    targets, carried = held_teacher(model, upper, indices)
    u = PART_NAMES.index("upper")
    for level, f in enumerate(model.config.factors):
        first_still = 32 // (4 * f)
        expected = torch.arange(indices[level].shape[2]) >= first_still
        assert torch.equal(targets[level][0, u] == K, expected), level
        assert torch.equal(carried[level][0, u, first_still:], indices[level][0, u, first_still - 1].expand(64 // (4 * f) - first_still))
        assert torch.equal(carried[level][0, u, :first_still], indices[level][0, u, :first_still])
        others = [p for p in range(len(PART_NAMES)) if p != u]
        assert torch.equal(targets[level][0, others], indices[level][0, others]) and torch.equal(
            carried[level][0, others], indices[level][0, others]
        )
    still = split_parts(arm_motion(64, 1))["upper"][None].float()  # still from the first frame
    targets, _ = held_teacher(model, still, indices)
    assert all(bool((t[0, u, 0] != K) and (t[0, u, 1:] == K).all()) for t in targets)


def test_stage2_loss_teaches_the_hold_outcome():
    """With a hold outcome, stage 2's cross-entropy falls as the hold logit rises on a batch
    whose arms are still (its targets are holds)."""
    torch.manual_seed(8)
    model = GranuMamba(TINY | {"hold_speed": 0.15})
    frames = 64
    batch = {p: torch.zeros(2, frames, PART_DIMS[p]) for p in PART_NAMES}
    batch["upper"] = split_parts(arm_motion(frames, 1))["upper"][None].float().expand(2, -1, -1).clone()
    batch |= {"audio": torch.randn(2, frames, 68), "words": torch.zeros(2, frames, dtype=torch.long), "speaker": torch.tensor([0, 1])}
    model.eval()  # no dropout: the two evaluations differ by the bias alone
    before = stage2_loss(model, batch, seed_probability=0)["ce_fine"]
    with torch.no_grad():
        model.generator.logit_bias[2][PART_NAMES.index("upper"), 0, -1] += 5.0
    after = stage2_loss(model, batch, seed_probability=0)["ce_fine"]
    assert after < before - 0.5


def test_hold_speed_is_saved_and_a_config_without_it_has_no_hold(tmp_path):
    model = hold_model(1.0)
    model.save_pretrained(tmp_path / "hold")
    again = GranuMamba.from_pretrained(tmp_path / "hold")
    assert again.config.hold_speed == 0.15 and again.generator.hold
    audio = torch.randn(96, 68)
    a, b = model.generate(audio, rng_seed=1), again.generate(audio, rng_seed=1)
    assert all(torch.equal(a[p], b[p]) for p in a)
    plain = GranuMamba(TINY)
    assert not plain.generator.hold and plain.generator.logit_weight[0].shape[-1] == TINY["codebook_size"]
    assert GranuMambaConfig.from_dict({}).hold_speed == 0.0
    model.config.hold_temperature = 0.4
    model.save_pretrained(tmp_path / "hold_t")
    assert GranuMamba.from_pretrained(tmp_path / "hold_t").config.hold_temperature == 0.4
    assert GranuMambaConfig.from_dict({}).hold_temperature == 1.0
    for bad in (0, -1, 2.5, True, "cold"):
        with pytest.raises(ModelLoadError, match="hold_temperature must be a number above 0 up to 2"):
            GranuMambaConfig.from_dict({"hold_temperature": bad})
    for bad in (-0.1, 6, True, "fast"):
        with pytest.raises(ModelLoadError, match="hold_speed must be a number from 0 to 5"):
            GranuMambaConfig.from_dict({"hold_speed": bad})


@pytest.mark.parametrize(
    "split, causal, bands", [(False, False, False), (True, False, False), (False, True, False), (True, True, False), (True, False, True)]
)
def test_decoding_sees_no_further_than_its_reach_and_windows_of_that_context_are_exact(split, causal, bands):
    """`PartVQVAE.reach` bounds how far a frame's decoding sees: changing the latents from one
    point on changes no frame more than `reach` frames before it (and some frame within it; a
    causal decoder's none before it), and changing them up to a point changes no frame more than
    `reach` after it, so windowed decoding with `decode_overlap` latents of context gives the
    one-pass result."""
    torch.manual_seed(4)
    model = GranuMamba(TINY | {"split_decoder": split, "causal": causal, "level_bands": bands}).eval()
    vq = model.vqvae["upper"]
    per = vq.frames_per_latent
    c = [torch.randn(1, 64, vq.latent_dim) for _ in range(3)]

    def moved(region):
        changed = [x.clone() for x in c]
        for x in changed:
            x[:, region] += torch.randn_like(x[:, region])
        with torch.no_grad():
            return ((vq.decode(c)[0] - vq.decode(changed)[0]).abs().amax(-1) > 0).nonzero()[:, 0]

    later, earlier = moved(slice(32, None)), moved(slice(None, 32))
    if causal:
        assert int(later.min()) == 32 * per
    else:
        assert 32 * per - vq.reach <= int(later.min()) < 32 * per - vq.reach // 2
    assert 32 * per + vq.reach // 2 < int(earlier.max()) < 32 * per + vq.reach
    indices = [torch.randint(0, 32, (1, n)) for n in (40, 80, 160)]
    with torch.no_grad():
        windowed = model.decode_part("upper", indices, (1.0, 1.0, 1.0), window=model.config.factors[0] * 4)
        whole = model.decode_part("upper", indices, (1.0, 1.0, 1.0), window=10_000)
    assert torch.allclose(windowed, whole, atol=1e-5)
