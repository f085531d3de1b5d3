import torch

from dwr.data.augment import normalize, random_crop, random_flip


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 3 * 6 * 5, dtype=torch.int64).view(2, 3, 6, 5).to(torch.uint8)
    torch.manual_seed(1)
    out = random_crop(x, 2)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for n in range(2):
        windows = [padded[n, :, i : i + 6, j : j + 5] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[n], w) for w in windows)
    assert torch.equal(random_crop(x, 0), x)


def test_random_crop_offsets_differ_per_image():
    x = torch.randint(0, 255, (64, 1, 8, 8), dtype=torch.uint8)
    x = x[:1].expand(64, -1, -1, -1).contiguous()  # the same image 64 times
    out = random_crop(x, 4)
    assert len({tuple(o.flatten().tolist()) for o in out}) > 10


def test_random_flip_mirrors_about_half():
    x = torch.arange(1000 * 4, dtype=torch.float32).view(1000, 1, 1, 4)
    out = random_flip(x)
    flipped = (out[:, 0, 0, 0] == x[:, 0, 0, 3]).float().mean()
    kept = (out == x).flatten(1).all(1).float().mean()
    assert abs(flipped - 0.5) < 0.08 and abs(flipped + kept - 1) < 1e-6


def test_normalize():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalize(x, (0.5, 0.5, 0.0), (0.5, 0.25, 1.0))
    assert out.dtype == torch.float32
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([1.0, 2.0, 1.0]))
