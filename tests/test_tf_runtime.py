"""TensorFlow runtime settings per model (deepjet_nb.tf_runtime): chosen values, overrides, thread pools."""

import subprocess
import sys
import textwrap

from deepjet_nb.tf_runtime import TRAINING_SETTINGS, settings_for


def test_a_runs_own_settings_override_the_models_measured_choice():
    assert settings_for("deepcsv", steps_per_execution=4) == {"steps_per_execution": 4}
    assert settings_for("deepjet", intra_op_threads=1, inter_op_threads=None) == {"intra_op_threads": 1}
    assert settings_for("my_own_model") == {}  # models without a measurement keep TensorFlow's defaults
    # nothing measured faster without a cost (docs/reference.md §4): the built-in models keep the defaults
    assert TRAINING_SETTINGS == {} and settings_for("deepjet") == settings_for("deepcsv") == {}


def test_thread_pools_are_set_before_tensorflow_starts_and_refused_after():
    code = textwrap.dedent("""
        from deepjet_nb.tf_runtime import apply_threads
        import tensorflow as tf
        assert apply_threads(1, 2)
        assert (tf.config.threading.get_intra_op_parallelism_threads(),
                tf.config.threading.get_inter_op_parallelism_threads()) == (1, 2)
        tf.constant(1.0) + 1.0  # the runtime starts
        assert apply_threads(1, 2)  # what is already set is fine
        assert not apply_threads(2, 2)  # a change is not possible any more
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
