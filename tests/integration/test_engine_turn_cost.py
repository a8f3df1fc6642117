"""What the engine does per turn (docs/performance.md), in the engine's own environment.

- The sentence encoder runs on one thread however its libgomp was loaded
  (bot/components/sentence_embeddings.py).
"""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

from abono.settings import ROOT, Settings

pytestmark = pytest.mark.integration

ENCODER = textwrap.dedent(
    """
    import os, sys
    import sklearn.linear_model  # the classifier loads the same libgomp first, as in the engine
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from bot.components.sentence_embeddings import E5SentenceFeaturizer

    def threads():
        return len(os.listdir("/proc/self/task"))

    if sys.argv[1] == "environment":  # what the featurizer used to do: too late to count
        os.environ["OMP_NUM_THREADS"] = "1"
    config = {**E5SentenceFeaturizer.get_default_config(), "sequence_features": "none"}
    if sys.argv[1] == "environment":
        config["num_threads"] = None
    before = threads()
    featurizer = E5SentenceFeaturizer(config, ExecutionContext(GraphSchema({}), node_name="e5"))
    featurizer._embed(["60614 0202", "how much do I owe?"])
    print("extra threads:", threads() - before)
    """
)


def in_engine(script: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    done = subprocess.run(
        [str(Settings().engine_python), "-c", script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()[-1]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: libgomp's team is one thread")
def test_setting_omp_num_threads_after_the_classifier_loads_does_not_hold_the_encoder() -> None:
    assert in_engine(ENCODER, "environment") != "extra threads: 0"


def test_the_featurizer_encodes_on_the_thread_that_calls_it() -> None:
    assert in_engine(ENCODER, "component") == "extra threads: 0"
