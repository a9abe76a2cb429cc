"""Baseline: the same autoencoder and KMeans as one plain single-process script.

Trains the MLP autoencoder of a deepclust config with plain torch on the MNIST
test split, clusters the embedding with scikit-learn's KMeans and prints ACC,
NMI, ARI and the seconds per step. It shares the model code with deepclust
(:func:`deepclust.models.build_autoencoder`) but no Spark, DDP or MLflow, so
the two differ only in the machinery around the model.

    .venv/bin/python benchmarks/plain_mnist.py [--config CONF] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from deepclust.config import load_config
from deepclust.evaluate.metrics import clustering_accuracy
from deepclust.models import ModelSpec, build_autoencoder
from deepclust.read.prepare import load_source
from deepclust.train.augment import random_shift


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="conf/mnist_mlp.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.overrides)
    torch.set_num_threads(args.threads)
    torch.manual_seed(config.seed)

    started = time.perf_counter()
    features, labels = load_source("mnist")
    x = torch.from_numpy(features)
    spec = ModelSpec(
        config.model.family,
        features.shape[1],
        tuple(config.model.hidden_dims),
        config.model.embedding_dim,
    )
    model = build_autoencoder(spec)
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=config.train.learning_rate,
        weight_decay=config.train.weight_decay,
    )
    generator = torch.Generator().manual_seed(config.seed)
    load_seconds = time.perf_counter() - started

    started = time.perf_counter()
    for _ in range(config.train.epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), config.train.batch_size):
            batch = x[order[start : start + config.train.batch_size]]
            if config.train.shift_pixels:
                batch = random_shift(
                    batch, config.data.image_shape, config.train.shift_pixels, generator
                )
            _, reconstruction = model(batch)
            loss = torch.nn.functional.mse_loss(
                reconstruction, model.scale_input(batch)
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    train_seconds = time.perf_counter() - started

    started = time.perf_counter()
    with torch.inference_mode():
        embedding = model.embed(x).numpy()
    embed_seconds = time.perf_counter() - started

    started = time.perf_counter()
    kmeans = KMeans(config.cluster.k, n_init=config.cluster.n_init, random_state=0)
    clusters = kmeans.fit_predict(embedding)
    cluster_seconds = time.perf_counter() - started

    contingency = np.zeros((config.cluster.k, labels.max() + 1), dtype=np.int64)
    np.add.at(contingency, (clusters, labels), 1)
    total = load_seconds + train_seconds + embed_seconds + cluster_seconds
    print(
        f"acc {clustering_accuracy(contingency):.3f} "
        f"nmi {normalized_mutual_info_score(labels, clusters):.3f} "
        f"ari {adjusted_rand_score(labels, clusters):.3f} | seconds: load "
        f"{load_seconds:.1f}, train {train_seconds:.1f}, embed {embed_seconds:.1f}, "
        f"cluster {cluster_seconds:.1f}, total {total:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
