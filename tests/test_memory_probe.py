"""The memory probe's peak is its own process's, not the process that started it."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

MIB = 2**20


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux's VmHWM")
def test_peak_rss_is_the_probes_own_not_its_parents():
    held_by_parent = np.ones(512 * MIB, dtype=np.uint8)  # resident here when the probe forks
    probe = (
        "import numpy as np; from marsseg.memory_probe import peak_rss_mib; "
        f"own = np.ones(256 * {MIB}, dtype=np.uint8); print(peak_rss_mib())"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    peak = float(done.stdout.split()[-1])
    del held_by_parent  # the parent held it until here, while the probe ran
    assert 256 <= peak < 450  # its 256 MiB and Python's, not the parent's 512 MiB


def _config() -> dict:
    """Two tiny UNets, the second of two members and with a Big Rock helper, and an ensemble."""
    unet = {"architecture": "unet", "params": {"filters": [4, 8]}, "loss": {"name": "focal"}}
    return {
        "training": {"batch_size": 8},
        "variants": {
            "one": unet,
            "two": {**unet, "members": [{}, {}], "big_rock_helper": {"variant": "rocks"}},
            "rocks": {**unet, "architecture": "bigrock_binary", "target": "big_rock"},
        },
        "ensembles": {"pair": ["one", "two"]},
        "prediction": {"batch_size": 4},
    }


def test_prediction_models_are_what_the_predict_rule_loads():
    from marsseg.benchmark import prediction_models

    config = _config()
    config["variants"]["two"]["big_rock_helper"]["threshold"] = 0.7
    models, helpers, settings = prediction_models(config, "two")
    assert [m.output_shape[-1] for m in models] == [5, 5]
    assert [m.output_shape[-1] for m in helpers] == [2]
    assert settings == {"big_rock_threshold": 0.7, "weights": [0.5, 0.5]}
    models, helpers, settings = prediction_models(config, "pair")  # each variant counts equally
    assert (len(models), len(helpers), settings["weights"]) == (3, 1, [0.5, 0.25, 0.25])


def test_the_prediction_probe_runs_the_big_rock_helper_as_the_rule_does(tmp_path, monkeypatch):
    import marsseg.prediction
    from marsseg.io import save_arrays
    from marsseg.memory_probe import probe_prediction

    images = np.zeros((6, 64, 128), np.uint8)
    save_arrays(tmp_path / "val.npz", images=images[:2], masks=images[:2])
    save_arrays(tmp_path / "test.npz", images=images, masks=images)
    calls = []
    real = marsseg.prediction.predict_labels

    def recorded(models, images, batch_size, tta=False, big_rock_helpers=(), **settings):
        calls.append((len(models), len(images), tta, list(big_rock_helpers), settings))
        return real(models, images, batch_size, tta, big_rock_helpers, **settings)

    monkeypatch.setattr(marsseg.prediction, "predict_labels", recorded)
    held = probe_prediction(_config(), "two", tmp_path / "val.npz", tmp_path / "test.npz", 5)
    assert held == {"label_maps_mib": 0}  # 4 maps of 8 images: 256 KiB
    n_models, n_images, tta, helpers, settings = calls[-1]
    assert (n_models, n_images, tta) == (2, 5, True)
    assert [m.output_shape[-1] for m in helpers] == [2]
    assert settings == {"big_rock_threshold": 0.5, "weights": [0.5, 0.5]}
