"""Tests for the peak data set (racecar_core.data.peak): generator, PNG loader, and the authors' originals."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from racecar_core.data.peak import (
    FONT,
    PEAK_STAMP,
    STROKE_KINDS,
    load_peak_folder,
    make_peak,
    peak_split,
    render_paths,
    stamp_box,
    stamp_for,
)

ORIGINALS = Path(__file__).resolve().parents[1].parent / "shared/data/racecar-peak"
STAMP_ROWS = [
    [3, 84, 179, 181, 87, 3],
    [84, 239, 255, 255, 241, 84],
    [182, 255, 255, 255, 255, 182],
    [183, 255, 255, 255, 255, 183],
    [87, 241, 255, 255, 243, 87],
    [3, 84, 179, 181, 87, 3],
]
BOX = {0: (slice(5, 11), slice(4, 10)), 1: (slice(19, 25), slice(19, 25))}  # written out, not from the module


@pytest.fixture(scope="module")
def sample():
    """120 generated images per class with their stroke kinds (seed 0)."""
    return make_peak(120, seed=0, return_kinds=True)


def stats(images: np.ndarray) -> dict[str, float]:
    """Mean non-zero fraction, mean intensity of non-zero pixels, fraction of pixels at 255."""
    images = images.astype(np.int64)
    return {
        "nonzero": float((images > 0).mean()),
        "intensity": float(images[images > 0].mean()),
        "saturated": float((images == 255).mean()),
    }


def strokes_only(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = images.copy()
    for image, label in zip(out, labels):
        image[BOX[int(label)]] = 0
    return out


def ring_max(image: np.ndarray, label: int) -> int:
    """Largest value in the 1-px ring around the stamp box: a stroke running into the box is bright here."""
    rows, cols = BOX[label]
    window = image[rows.start - 1 : rows.stop + 1, cols.start - 1 : cols.stop + 1].astype(int)
    window[1:-1, 1:-1] = -1
    return int(window.max())


def min_gap(image: np.ndarray, label: int) -> int:
    """Chebyshev distance (px) from the stamp box to the nearest non-zero pixel outside it."""
    rows, cols = np.nonzero(strokes_only(image[None], [label])[0])
    box_r, box_c = BOX[label]
    dr = np.maximum(np.maximum(box_r.start - rows, rows - (box_r.stop - 1)), 0)
    dc = np.maximum(np.maximum(box_c.start - cols, cols - (box_c.stop - 1)), 0)
    return int(np.maximum(dr, dc).min())


# ------------------------------------------------------------------------------------------ generator


def test_stamp_constant():
    np.testing.assert_array_equal(PEAK_STAMP, STAMP_ROWS)
    assert PEAK_STAMP.dtype == np.uint8 and not PEAK_STAMP.flags.writeable
    np.testing.assert_array_equal(stamp_for(1), np.array(STAMP_ROWS)[::-1])
    assert stamp_box(0) == BOX[0] and stamp_box(1) == BOX[1]


def test_shapes_dtypes_and_label_order():
    images, labels = make_peak(3, seed=1)
    assert images.shape == (6, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1])


def test_stamp_exact_at_class_location(sample):
    images, labels, _ = sample
    stamps = {0: np.array(STAMP_ROWS), 1: np.array(STAMP_ROWS)[::-1]}
    for image, label in zip(images, labels):
        np.testing.assert_array_equal(image[BOX[int(label)]], stamps[int(label)])
    # class 0 and class 1 differ in where the peak is, not only in its orientation
    assert not np.array_equal(images[labels == 1][:, BOX[0][0], BOX[0][1]][0], PEAK_STAMP)


def test_every_image_has_clutter_away_from_the_stamp(sample):
    images, labels, _ = sample
    clutter = strokes_only(images, labels)
    assert (clutter > 0).sum(axis=(1, 2)).min() > 20
    # No stroke enters the stamp box: only faint blur tails may reach the ring around it.
    assert max(ring_max(image, int(label)) for image, label in zip(images, labels)) < 64
    gaps = np.array([min_gap(image, int(label)) for image, label in zip(images, labels)])
    assert 3.2 < gaps.mean() < 5.5, gaps.mean()  # the originals keep a visible gap: mean 4.6 px


def test_deterministic_per_seed_and_different_across_seeds():
    a, la = make_peak(4, seed=7)
    b, lb = make_peak(4, seed=7)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    c, _ = make_peak(4, seed=8)
    assert all(not np.array_equal(x, y) for x, y in zip(a, c))


def test_each_class_prefix_does_not_depend_on_n():
    small, _ = make_peak(2, seed=3)
    large, _ = make_peak(5, seed=3)
    np.testing.assert_array_equal(small[:2], large[:2])
    np.testing.assert_array_equal(small[2:], large[5:7])


def test_images_within_a_set_differ(sample):
    images = sample[0]
    assert len({image.tobytes() for image in images}) == len(images)


def test_mean_nonzero_fraction_near_thirty_percent(sample):
    fraction = (sample[0] > 0).mean()
    assert abs(fraction - 0.30) < 0.03, fraction


def test_every_stroke_kind_is_produced(sample):
    images, labels, kinds = sample
    assert set(kinds) == set(STROKE_KINDS)
    counts = {kind: int((kinds == kind).sum()) for kind in STROKE_KINDS}
    assert min(counts.values()) >= 15, counts  # 240 draws with probabilities 0.15-0.25
    for kind in STROKE_KINDS:  # each kind leaves real ink in its images
        assert (strokes_only(images[kinds == kind], labels[kinds == kind]) > 100).sum(axis=(1, 2)).min() > 5


def test_some_triangles_are_filled(sample):
    """Filled triangles (as in some originals) are the only clutter with a solid patch of full ink."""
    images, labels, kinds = sample
    solid = (strokes_only(images, labels) >= 250).sum(axis=(1, 2)) >= 3
    assert solid[kinds == "triangle"].sum() >= 2
    assert not solid[kinds != "triangle"].any()


def test_split_keys_shapes_and_consistency():
    split = peak_split(n_train=4, n_test=2, seed=5)
    assert set(split) == {"x_train", "y_train", "x_test", "y_test"}
    assert split["x_train"].shape == (8, 28, 28) and split["x_test"].shape == (4, 28, 28)
    assert split["x_train"].dtype == np.uint8 and split["y_test"].dtype == np.int64
    np.testing.assert_array_equal(split["y_test"], [0, 0, 1, 1])
    np.testing.assert_array_equal(split["x_train"], make_peak(4, seed=5)[0])
    train = {image.tobytes() for image in split["x_train"]}
    assert not train & {image.tobytes() for image in split["x_test"]}


def test_split_test_images_do_not_depend_on_n_train():
    a = peak_split(n_train=2, n_test=3, seed=11)
    b = peak_split(n_train=9, n_test=3, seed=11)
    np.testing.assert_array_equal(a["x_test"], b["x_test"])
    np.testing.assert_array_equal(a["y_test"], b["y_test"])


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: make_peak(0), ValueError),
        (lambda: make_peak(-3), ValueError),
        (lambda: make_peak(2.5), TypeError),
        (lambda: make_peak(True), TypeError),
        (lambda: make_peak("10"), TypeError),
        (lambda: make_peak(2, seed=-1), ValueError),
        (lambda: make_peak(2, seed=1.0), TypeError),
        (lambda: peak_split(0, 5), ValueError),
        (lambda: peak_split(5, 0), ValueError),
        (lambda: peak_split(5, None), TypeError),
        (lambda: stamp_box(2), ValueError),
    ],
)
def test_bad_arguments(call, error):
    with pytest.raises(error):
        call()


def test_numpy_integers_are_accepted():
    images, _ = make_peak(np.int64(1), seed=np.uint8(2))
    assert images.shape == (2, 28, 28)


# ------------------------------------------------------------------------------------------ rendering


def test_pen_deposits_the_same_ink_in_every_direction():
    """A long straight stroke carries STROKE_WIDTH (1.5) px of full ink per px of length, at any angle."""
    for angle in (0, 20, 45, 70, 90):
        d = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
        image = render_paths([(np.stack([[13.3, 13.6] - 12 * d, [13.3, 13.6] + 12 * d]), False)])
        ink = image.sum() / 255
        assert abs(ink - 1.5 * 24) < 0.06 * 1.5 * 24 + 3, (angle, ink)  # + round end caps


def test_pen_cross_section_matches_the_originals():
    image = render_paths([(np.array([[3.0, 14.25], [24.0, 14.25]]), False)])
    profile = image[12:18, 12].astype(int)  # rows 12..17 across the stroke
    np.testing.assert_allclose(profile, [0, 35, 202, 127, 18, 0], atol=3)  # originals: ~[0, 49, 198, 120, 14, 0]


def test_filled_path_is_painted_inside():
    corners = np.array([[8.0, 8.0], [20.0, 8.0], [14.0, 19.0], [8.0, 8.0]])
    outline, filled = render_paths([(corners, False)]), render_paths([(corners, True)])
    assert outline[12, 14] == 0 and filled[12, 14] == 255
    assert (filled >= outline).all()


def test_font_glyphs_are_polylines_in_the_unit_box():
    assert len(FONT) >= 20
    for glyph in FONT.values():
        for line in glyph:
            assert line.ndim == 2 and line.shape[1] == 2 and len(line) >= 2
            assert line.min() >= -0.05 and line.max() <= 1.55


# ---------------------------------------------------------------------------------------------- loader


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray, mode: str = "RGBA") -> None:
    """Write images as root/{label}/{i}.png in the authors' format (RGBA with R=G=B, opaque) or as L."""
    counters = {0: 0, 1: 0}
    for image, label in zip(images, labels):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        if mode == "RGBA":
            pixels = np.dstack([image, image, image, np.full_like(image, 255)])
            Image.fromarray(pixels, "RGBA").save(root / str(label) / f"{counters[label]}.png")
        else:
            Image.fromarray(image, "L").save(root / str(label) / f"{counters[label]}.png")
        counters[label] += 1


@pytest.mark.parametrize("mode", ["RGBA", "L"])
def test_loader_reads_authors_layout(tmp_path, mode):
    images, labels = make_peak(4, seed=2)
    write_folder(tmp_path, images, labels, mode)
    data = load_peak_folder(tmp_path, train=range(3), test=[3])
    np.testing.assert_array_equal(data["x_train"], np.concatenate([images[0:3], images[4:7]]))
    np.testing.assert_array_equal(data["x_test"], images[[3, 7]])
    np.testing.assert_array_equal(data["y_train"], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(data["y_test"], [0, 1])
    assert data["x_train"].dtype == np.uint8 and data["y_train"].dtype == np.int64


def test_loader_missing_folder_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"0/<i>\.png"):
        load_peak_folder(tmp_path / "absent")


def test_loader_missing_file_names_it(tmp_path):
    images, labels = make_peak(2, seed=2)
    write_folder(tmp_path, images, labels)
    with pytest.raises(FileNotFoundError, match=r"2 peak image\(s\) missing, e.g. .*0/2\.png"):
        load_peak_folder(tmp_path, train=range(3), test=[])


def test_loader_rejects_wrong_size_and_mode(tmp_path):
    (tmp_path / "0").mkdir()
    (tmp_path / "1").mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8), "L").save(tmp_path / "0" / "0.png")
    Image.fromarray(np.zeros((27, 28), np.uint8), "L").save(tmp_path / "1" / "0.png")
    with pytest.raises(ValueError, match="27x28"):
        load_peak_folder(tmp_path, train=[0], test=[])
    Image.fromarray(np.zeros((28, 28), np.uint8), "L").convert("P").save(tmp_path / "1" / "0.png")
    with pytest.raises(ValueError, match="mode"):
        load_peak_folder(tmp_path, train=[0], test=[])


# ------------------------------------------------------------------------------- the authors' originals

needs_originals = pytest.mark.skipif(
    not ORIGINALS.is_dir(), reason=f"authors' peak images not found at {ORIGINALS}"
)


@pytest.fixture(scope="module")
def originals():
    return load_peak_folder(ORIGINALS)


@needs_originals
def test_originals_load_and_carry_the_stamp(originals):
    assert originals["x_train"].shape == (100, 28, 28) and originals["x_test"].shape == (10, 28, 28)
    images = np.concatenate([originals["x_train"], originals["x_test"]])
    labels = np.concatenate([originals["y_train"], originals["y_test"]])
    # Unobstructed: no stroke core next to the box (ring values up to 89 are blur tails of strokes passing by).
    unobstructed = [i for i in range(len(images)) if ring_max(images[i], int(labels[i])) < 128]
    assert len(unobstructed) == 110
    for i in unobstructed:
        np.testing.assert_array_equal(images[i][BOX[int(labels[i])]], stamp_for(int(labels[i])))


@needs_originals
def test_generator_statistics_close_to_originals(originals, sample):
    orig = np.concatenate([originals["x_train"], originals["x_test"]])
    orig_labels = np.concatenate([originals["y_train"], originals["y_test"]])
    gen, gen_labels, _ = sample
    o, g = stats(orig), stats(gen)
    o_gap = np.mean([min_gap(x, int(y)) for x, y in zip(orig, orig_labels)])
    g_gap = np.mean([min_gap(x, int(y)) for x, y in zip(gen, gen_labels)])
    print(f"\n{'':28s}{'originals':>10s}{'generated':>10s}")
    for key in o:
        print(f"{key:28s}{o[key]:10.4f}{g[key]:10.4f}")
    print(f"{'mean gap to stamp (px)':28s}{o_gap:10.2f}{g_gap:10.2f}")
    assert abs(g["nonzero"] - o["nonzero"]) < 0.03  # measured: 0.307 vs 0.30
    assert abs(g["saturated"] - o["saturated"]) < 0.1 * o["saturated"]  # mostly the stamp's 12 pixels at 255
    # Known shortfall: generated strokes are dimmer on average (measured ~100 vs 112), because the originals
    # have fewer faint anti-aliasing pixels at the same stroke cross-section; allow 15%.
    assert abs(g["intensity"] - o["intensity"]) < 0.15 * o["intensity"]
    assert abs(g_gap - o_gap) < 1.0
