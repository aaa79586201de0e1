"""The Keras runner on Keras' two training backends: TensorFlow (``tf.GradientTape``) and PyTorch
(``KERAS_BACKEND=torch``, ``torch.autograd``). The backend is fixed when Keras is imported, so each
runs in a fresh interpreter. Independent truth: the other backend's autograd on the same weights and
the same batch gives the same loss, per-layer gradient norms, update ratios, evaluation, refreshed
BatchNorm statistics and dead-unit fractions."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import ROOT, keras_only

pytest.importorskip("torch")

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    from modellint.adapters import load_graph
    from modellint.probes.runner import make_runner

    path, data = sys.argv[1], np.load(sys.argv[2])
    x, y = data["x"], data["y"]
    runner = make_runner(load_graph(path), path)
    runner.reset(0, 1e-2)
    runner.model.set_weights(keras.saving.load_model(path).get_weights())  # the same weights on both
    first = runner.step(x, y, measure=True)
    losses = [runner.step(x, y).loss for _ in range(4)]
    runner.refresh_norm_stats([x[:16], x[16:]])
    bn = [l for l in runner.model.layers if isinstance(l, keras.layers.BatchNormalization)][0]
    loss, acc = runner.evaluate(x, y)
    act = runner.activation_stats(x)
    print(json.dumps({"backend": keras.backend.backend(), "device": runner.device, "first": first.loss,
                      "grad": first.grad_norm, "ratio": first.update_ratio, "losses": losses,
                      "moving_mean": np.asarray(keras.ops.convert_to_numpy(bn.moving_mean)).tolist(),
                      "eval": [loss, acc], "dead": act.dead_fraction}))
""")


@keras_only
def test_tensorflow_and_torch_backends_measure_alike(tmp_path):
    import keras
    from keras import layers

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((12, 12, 3)), layers.Conv2D(6, 3, use_bias=False, name="c1"),
                              layers.BatchNormalization(name="bn"), layers.Activation("relu", name="act"),
                              layers.Conv2D(8, 3, activation="relu", name="c2",
                                            bias_initializer=keras.initializers.Constant(-0.2)),
                              layers.GlobalAveragePooling2D(name="gap"), layers.Dense(4, activation="softmax",
                                                                                       name="head")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    path = tmp_path / "m.keras"
    model.save(path)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((32, 12, 12, 3)).astype(np.float32), y=np.arange(32) % 4)
    (tmp_path / "probe_backend.py").write_text(SCRIPT)
    out = {}
    for backend in ("tensorflow", "torch"):
        r = subprocess.run([sys.executable, "probe_backend.py", str(path), "d.npz"], capture_output=True, text=True,
                           cwd=tmp_path, timeout=300, env={**os.environ, "KERAS_BACKEND": backend,
                                                           "PYTHONPATH": str(ROOT)})
        assert r.returncode == 0, r.stderr[-2000:]
        out[backend] = json.loads(r.stdout.strip().splitlines()[-1])
        assert out[backend]["backend"] == backend
    tf, pt = out["tensorflow"], out["torch"]
    assert tf["first"] == pytest.approx(pt["first"], rel=1e-5)
    assert set(tf["grad"]) == set(pt["grad"]) == {"c1", "c2", "head"}
    for name in tf["grad"]:
        assert tf["grad"][name] == pytest.approx(pt["grad"][name], rel=1e-4), name
        assert tf["ratio"][name] == pytest.approx(pt["ratio"][name], rel=1e-3), name
    assert np.allclose(tf["losses"], pt["losses"], rtol=1e-4)
    assert np.allclose(tf["moving_mean"], pt["moving_mean"], rtol=1e-4, atol=1e-6)
    assert np.allclose(tf["eval"], pt["eval"], rtol=1e-4)
    assert tf["dead"] == pt["dead"] and set(tf["dead"]) == {"act", "c2.activation"}


@keras_only
def test_other_backends_are_refused_in_one_line(tmp_path, monkeypatch):
    import keras

    from modellint.errors import InputError
    from modellint.probes.runner_keras import KerasRunner

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(InputError, match="tensorflow or torch backend; KERAS_BACKEND is 'jax'"):
        KerasRunner(None, model)
