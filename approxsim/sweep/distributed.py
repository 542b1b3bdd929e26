"""The sweep's tf.distribute strategy, and one epoch of training under ``MultiWorkerMirroredStrategy``
without ``Model.fit``.

Keras 3's ``fit`` fails under ``MultiWorkerMirroredStrategy`` with more than one worker (it
reduces the first distributed batch to build the model and cannot; keras-team/keras#20585).
This loop does what ``fit`` would: each replica computes the loss of its share of the global
batch (scaled by the global batch size, so the all-reduced gradient is that of the global batch),
the optimizer applies the all-reduced gradient, and the epoch's mean loss and accuracy are summed
over all replicas. Evaluation runs on every worker alone, on the whole test set, with the same
weights everywhere, so no collective operation depends on the test set's size.
"""

from __future__ import annotations

import numpy as np

__all__ = ["strategy_for", "train_epoch", "evaluate"]


def strategy_for(cfg):
    """The tf.distribute strategy of a sweep's ``strategy`` setting, and whether this process (the
    chief, or the only one) writes the outputs."""
    import json
    import os

    import tensorflow as tf

    if cfg.strategy == "mirrored":
        # The local GPUs; without any, every logical CPU (several only when configured so).
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or \
            [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices), True
    if cfg.strategy == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable (cluster and task) "
                             "on every worker; see https://www.tensorflow.org/guide/distributed_training. "
                             "Received: TF_CONFIG unset")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        task = json.loads(os.environ["TF_CONFIG"]).get("task", {})
        cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
        chief = task.get("type") == "chief" or ("chief" not in cluster and task.get("type") == "worker"
                                                 and int(task.get("index", 0)) == 0)
        return strategy, chief
    return tf.distribute.get_strategy(), True


def train_epoch(model, optimizer, strategy, dataset, global_batch: int) -> dict:
    """Trains ``model`` for one pass over ``dataset`` (batched by ``global_batch``); returns loss and accuracy."""
    import keras
    import tensorflow as tf

    step = model.__dict__.get("_approxsim_distributed_step")
    if step is None:
        with strategy.scope():
            per_example = keras.losses.SparseCategoricalCrossentropy(reduction=None)

        def replica_step(x, y):
            with tf.GradientTape() as tape:
                probs = model(x, training=True)
                losses = per_example(y, probs)
                loss = tf.nn.compute_average_loss(losses, global_batch_size=global_batch)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            correct = tf.cast(tf.equal(tf.argmax(probs, -1, output_type=tf.int64), tf.cast(y, tf.int64)), tf.float32)
            return tf.reduce_sum(losses), tf.reduce_sum(correct), tf.cast(tf.size(losses), tf.float32)

        @tf.function
        def step(batch):
            sums = strategy.run(replica_step, args=batch)
            return [strategy.reduce("SUM", s, axis=None) for s in sums]

        model.__dict__["_approxsim_distributed_step"] = step
    totals = np.zeros(3)
    for batch in strategy.experimental_distribute_dataset(dataset):
        totals += [float(v) for v in step(batch)]
    count = max(totals[2], 1.0)
    return {"loss": totals[0] / count, "accuracy": totals[1] / count}


def evaluate(model, dataset) -> dict:
    """Loss and accuracy of ``model`` on all of ``dataset``, computed in this process alone."""
    import keras

    per_example = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    loss = correct = count = 0.0
    for x, y in dataset:
        probs = model(x, training=False)
        loss += float(np.sum(per_example(y, probs)))
        correct += float(np.sum(np.argmax(probs, -1) == np.asarray(y)))
        count += int(np.asarray(y).shape[0])
    count = max(count, 1.0)
    return {"val_loss": loss / count, "val_accuracy": correct / count}
