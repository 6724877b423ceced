import io
import os
import stat
import zipfile

import numpy as np
import pytest

from marsseg.errors import InputError
from marsseg.io import load_arrays, load_course_npz, save_arrays, validate_images


def course_arrays(n=4, m=3, dtype=np.float64):
    rng = np.random.default_rng(0)
    training = np.zeros((n, 2, 64, 128), dtype=dtype)
    training[:, 0] = rng.integers(0, 256, (n, 64, 128))
    training[:, 1] = rng.integers(0, 5, (n, 64, 128))
    test = rng.integers(0, 256, (m, 64, 128)).astype(dtype)
    return {"training_set": training, "test_set": test}


def write(tmp_path, **arrays):
    path = tmp_path / "raw.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("dtype", [np.float64, np.uint8, np.float32, np.int32])
def test_loads_any_numeric_dtype_as_uint8(tmp_path, dtype):
    arrays = course_arrays(dtype=dtype)
    data = load_course_npz(write(tmp_path, **arrays))
    assert data["train_images"].dtype == np.uint8 and data["train_images"].shape == (4, 64, 128)
    np.testing.assert_array_equal(data["train_masks"], arrays["training_set"][:, 1])
    np.testing.assert_array_equal(data["test_images"], arrays["test_set"])


def bad_inputs():
    base = course_arrays()
    nan = course_arrays()
    nan["training_set"][0, 0, 0, 0] = np.nan
    inf = course_arrays()
    inf["test_set"][1, 2, 3] = np.inf
    label = course_arrays()
    label["training_set"][2, 1, 5, 5] = 7
    fractional = course_arrays()
    fractional["training_set"][2, 1, 5, 5] = 1.5
    bright = course_arrays()
    bright["training_set"][0, 0, 1, 1] = 300
    negative = course_arrays()
    negative["test_set"][0, 0, 0] = -1
    normalised = course_arrays()
    normalised["training_set"][:, 0] /= 255
    normalised["test_set"] /= 255
    cast = course_arrays(dtype=np.uint8)  # normalised, then rounded to uint8: 0 and 1 only
    cast["training_set"][:, 0] = np.rint(cast["training_set"][:, 0] / 255)
    cast["test_set"] = np.rint(cast["test_set"] / 255).astype(np.uint8)
    durations = course_arrays()
    durations["test_set"] = durations["test_set"].astype("timedelta64[s]")
    return {
        "wrong keys": (
            {"train": base["training_set"], "test_set": base["test_set"]},
            "lacks the key",
        ),
        "wrong train shape": (
            {"training_set": base["training_set"][:, :, :32], "test_set": base["test_set"]},
            r"expected \(N, 2, 64, 128\)",
        ),
        "wrong test shape": (
            {"training_set": base["training_set"], "test_set": base["test_set"][:, :, :10]},
            r"expected \(M, 64, 128\)",
        ),
        "non-numeric": (
            {"training_set": base["training_set"].astype(str), "test_set": base["test_set"]},
            "not numeric",
        ),
        "nan": (nan, "NaN or infinite"),
        "inf": (inf, "NaN or infinite"),
        "label out of range": (label, "outside 0-4"),
        "fractional label": (fractional, "non-integer labels"),
        "image above 255": (bright, "outside 0-255"),
        "image below 0": (negative, "outside 0-255"),
        "empty": (
            {"training_set": base["training_set"][:0], "test_set": base["test_set"]},
            "'training_set' holds no images",
        ),
        "no test images": (
            {"training_set": base["training_set"], "test_set": base["test_set"][:0]},
            "'test_set' holds no images.*Fix: give the test images",
        ),
        "images normalised to 0-1": (normalised, "looks normalised to 0-1. Fix: .*multiply"),
        "images normalised to 0-1, cast to uint8": (
            cast,
            r"'training_set\[:, 0\] \(images\)' has grey levels from 0 to 1: it looks normalised",
        ),
        "timedelta": (durations, "timedelta64.*not numeric"),
    }


@pytest.mark.parametrize("case", list(bad_inputs()))
def test_bad_input_is_named(tmp_path, case):
    arrays, message = bad_inputs()[case]
    with pytest.raises(InputError, match=message):
        load_course_npz(write(tmp_path, **arrays))


def test_a_value_just_out_of_range_is_printed_as_it_is_not_rounded_into_range(tmp_path):
    """`:g` printed 4.0000002 as 4 and 255.00001 as 255 ("labels from 0 to 4, outside 0-4"), and
    the darkest grey level was reported as 0 whatever it was."""
    label = course_arrays()
    label["training_set"][2, 1, 5, 5] = 4.0000002  # a float32 resize of the masks can do this
    with pytest.raises(InputError, match=r"has labels from 0 to 4\.0000002, outside 0-4 "):
        load_course_npz(write(tmp_path, **label))
    bright = course_arrays()
    bright["test_set"] = np.clip(bright["test_set"], 10, 250)  # the darkest grey level: 10
    bright["test_set"][0, 0, 0] = 255.00001
    with pytest.raises(
        InputError, match=r"'test_set' has grey levels from 10 to 255\.00001, outside"
    ):
        load_course_npz(write(tmp_path, **bright))


def test_missing_file_and_not_npz(tmp_path):
    with pytest.raises(InputError, match="does not exist.*raw_data"):
        load_course_npz(tmp_path / "nope.npz")
    junk, empty, array = tmp_path / "junk.npz", tmp_path / "empty.npz", tmp_path / "array.npy"
    junk.write_text("not a zip")
    empty.write_bytes(b"")
    np.save(array, np.zeros((2, 64, 128)))
    for path in (junk, empty, array):
        with pytest.raises(InputError, match="is not an npz archive.*Fix: point `raw_data`"):
            load_course_npz(path)


def test_all_black_float_images_are_not_taken_for_normalised_ones(tmp_path):
    arrays = course_arrays()
    arrays["training_set"][:, 0] = 0.0  # whole numbers in 0-1: 8-bit grey levels, all black
    data = load_course_npz(write(tmp_path, **arrays))
    assert not data["train_images"].any()


def test_object_arrays_are_refused_not_unpickled(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, training_set=np.array([{"a": 1}], dtype=object), test_set=np.zeros(3))
    with pytest.raises(InputError, match="object arrays"):
        load_course_npz(path)


def damaged_files(tmp_path) -> dict:
    """Course-format files damaged in ways a download or a hand-made zip can be."""
    arrays = course_arrays()
    plain, packed = tmp_path / "plain.npz", tmp_path / "packed.npz"
    np.savez(plain, **arrays)
    np.savez_compressed(packed, **arrays)
    files = {}
    for name, source, offset in (("bad_crc", plain, 2000), ("bad_deflate", packed, 300)):
        content = bytearray(source.read_bytes())
        content[offset] ^= 0xFF  # inside the training_set member's data
        files[name] = tmp_path / f"{name}.npz"
        files[name].write_bytes(content)
    npy = io.BytesIO()
    np.save(npy, arrays["training_set"])
    members = {
        "cut_short": npy.getvalue()[:-100],
        "bad_header": b"\x93NUMPY garbage",
        "not_npy": b"training images",
    }
    for name, content in members.items():
        files[name] = tmp_path / f"{name}.npz"
        with zipfile.ZipFile(files[name], "w") as archive:
            archive.writestr("training_set.npy" if name != "not_npy" else "training_set", content)
            archive.writestr("test_set.npy", b"")
    return files


@pytest.mark.parametrize("case", ["bad_crc", "bad_deflate", "cut_short", "bad_header", "not_npy"])
def test_a_damaged_file_is_named_not_a_traceback_nor_called_object_arrays(tmp_path, case):
    with pytest.raises(InputError) as caught:
        load_course_npz(damaged_files(tmp_path)[case])
    message = str(caught.value)
    assert message.startswith(f"'training_set' in '{tmp_path / case}.npz' cannot be read")
    assert "the file is damaged" in message and "Fix: fetch the course file" in message
    assert "object arrays" not in message


@pytest.mark.parametrize("compressed", [False, True])
def test_save_arrays_is_byte_identical_and_atomic(tmp_path, compressed):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    save_arrays(tmp_path / "x.npz", compressed=compressed, a=a)
    first = (tmp_path / "x.npz").read_bytes()
    save_arrays(tmp_path / "x.npz", compressed=compressed, a=a)
    assert (tmp_path / "x.npz").read_bytes() == first
    np.testing.assert_array_equal(load_arrays(tmp_path / "x.npz")["a"], a)
    with pytest.raises(ValueError):
        save_arrays(tmp_path / "y.npz", compressed=compressed, a=object())  # nothing left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]


def test_label_maps_are_saved_compressed_and_read_back_whole(tmp_path):
    labels = np.zeros((200, 64, 128), np.uint8)
    labels[:, 32:] = 3  # two flat regions, as a model's maps mostly are
    save_arrays(tmp_path / "plain.npz", labels=labels)
    save_arrays(tmp_path / "packed.npz", compressed=True, labels=labels)
    assert (tmp_path / "plain.npz").stat().st_size > labels.nbytes
    assert (tmp_path / "packed.npz").stat().st_size < labels.nbytes / 100
    np.testing.assert_array_equal(load_arrays(tmp_path / "packed.npz")["labels"], labels)


def test_saved_files_get_the_umask_permissions_not_mkstemps_0600(tmp_path):
    previous = os.umask(0o027)
    try:
        save_arrays(tmp_path / "x.npz", a=np.zeros(3))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "x.npz").stat().st_mode) == 0o640


def test_images_are_checked_and_rounded_a_chunk_at_a_time(monkeypatch):
    monkeypatch.setattr("marsseg.io.CHUNK_IMAGES", 2)  # 5 images: chunks of 2, 2 and 1
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (5, 64, 128))
    np.testing.assert_array_equal(
        validate_images("test_set", images), np.rint(images).astype(np.uint8)
    )
    normalised_last = np.zeros((5, 64, 128))  # only the last image is off: still refused
    normalised_last[4, 0, 0] = 0.5
    with pytest.raises(InputError, match="normalised to 0-1"):
        validate_images("test_set", normalised_last)
