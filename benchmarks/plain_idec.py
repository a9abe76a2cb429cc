"""Baseline: autoencoder, KMeans and IDEC refinement as one plain script.

Pre-trains the autoencoder of a deepclust config with plain torch in one
process, clusters the embedding with scikit-learn's KMeans, then refines the
encoder and centroids with IDEC on the MNIST test split (or scikit-learn's
digits). Prints ACC, NMI and ARI after KMeans and after refinement, and the
seconds per step. It shares the model, augmentation and loss code with
deepclust, but no Spark, DDP or MLflow, so the two differ only in the
machinery around the model.

    .venv/bin/python benchmarks/plain_idec.py [--config CONF] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
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
from deepclust.refine import (
    ClusteringModel,
    balance_penalty,
    kl_to_target,
    target_distribution,
)
from deepclust.train.augment import augment_images


def scores(labels: np.ndarray, clusters: np.ndarray, k: int) -> str:
    """Return ACC, NMI and ARI of a clustering as text."""
    contingency = np.zeros((k, labels.max() + 1), dtype=np.int64)
    np.add.at(contingency, (clusters, labels), 1)
    return (
        f"acc {clustering_accuracy(contingency):.3f} "
        f"nmi {normalized_mutual_info_score(labels, clusters):.3f} "
        f"ari {adjusted_rand_score(labels, clusters):.3f}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="conf/mnist_idec.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--source", default="mnist", choices=["mnist", "digits"])
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument(
        "--balance-weights",
        type=float,
        nargs="+",
        help="refine once per weight, each from the same pre-trained model "
        "(default: refine.balance_weight of the config)",
    )
    args = parser.parse_args(argv)
    config = load_config(args.config, args.overrides)
    torch.set_num_threads(args.threads)
    torch.manual_seed(config.seed)
    train, refine, shape = config.train, config.refine, config.data.image_shape
    seconds = {}

    started = time.perf_counter()
    features, labels = load_source(args.source)
    x = torch.from_numpy(features)
    spec = ModelSpec(
        config.model.family,
        features.shape[1],
        tuple(config.model.layer_sizes),
        config.model.embedding_dim,
        input_shape=shape,
        kernel_size=config.model.kernel_size,
        normalize_embedding=config.model.normalize_embedding,
    )
    model = build_autoencoder(spec)
    generator = torch.Generator().manual_seed(config.seed)
    seconds["load"] = time.perf_counter() - started

    def augmented(batch):
        return augment_images(
            batch, shape, train.shift_pixels, train.rotation_degrees, generator
        )

    started = time.perf_counter()
    optimizer = torch.optim.Adam(model.parameters(), lr=train.learning_rate)
    for _ in range(train.epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), train.batch_size):
            batch = augmented(x[order[start : start + train.batch_size]])
            _, reconstruction = model(batch)
            loss = model.reconstruction_loss(batch, reconstruction)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    seconds["train"] = time.perf_counter() - started

    started = time.perf_counter()
    model.eval()
    with torch.inference_mode():
        embedding = model.embed(x).numpy()
    kmeans = KMeans(config.cluster.k, n_init=config.cluster.n_init, random_state=0)
    clusters = kmeans.fit_predict(embedding)
    seconds["cluster"] = time.perf_counter() - started
    print(f"kmeans: {scores(labels, clusters, config.cluster.k)}", flush=True)

    pretrained = copy.deepcopy(model.state_dict())
    weights = args.balance_weights or [refine.balance_weight]
    for weight in weights:
        model.load_state_dict(pretrained)
        settings = dataclasses.replace(refine, balance_weight=weight)
        started = time.perf_counter()
        final, steps = run_idec(model, kmeans, x, clusters, settings, labels, augmented)
        seconds["refine"] = time.perf_counter() - started
        total = sum(seconds.values())
        print(
            f"refined (balance_weight {weight}): "
            f"{scores(labels, final, config.cluster.k)} after {steps} batches "
            "| seconds: "
            + ", ".join(f"{name} {value:.1f}" for name, value in seconds.items())
            + f", total {total:.1f}",
            flush=True,
        )
    return 0


def run_idec(model, kmeans, x, clusters, refine, labels, augmented):
    """Refine ``model`` and the KMeans centroids; return clusters and steps."""
    k = len(kmeans.cluster_centers_)
    head = ClusteringModel(model, kmeans.cluster_centers_, refine.alpha)
    optimizer = torch.optim.Adam(head.parameters(), lr=refine.learning_rate)
    batches_per_epoch = -(-len(x) // refine.batch_size)
    previous = torch.from_numpy(clusters)
    step, order, p = 0, None, None
    while step < refine.max_epochs * batches_per_epoch:
        if step % refine.update_interval == 0:
            head.eval()
            q = torch.cat([head.assign(part) for part in x.split(4096)])
            p = target_distribution(q, q.sum(0))
            current = q.argmax(1)
            changed = float((current != previous).float().mean())
            sizes = torch.bincount(current, minlength=k)
            print(
                f"refresh at batch {step}: changed {changed:.4f}, sizes "
                f"{sizes.min().item()}-{sizes.max().item()}, "
                f"{scores(labels, current.numpy(), k)}",
                flush=True,
            )
            previous = current
            if step > 0 and changed < refine.tol:
                break
            head.train()
        position = step % batches_per_epoch
        if position == 0:
            order = torch.randperm(len(x))
        index = order[position * refine.batch_size : (position + 1) * refine.batch_size]
        batch = augmented(x[index])
        q_batch, reconstruction = head(batch)
        loss = kl_to_target(p[index], q_batch) + refine.gamma * (
            model.reconstruction_loss(batch, reconstruction)
        )
        if refine.balance_weight:
            loss = loss + refine.balance_weight * balance_penalty(q_batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
    head.eval()
    q = torch.cat([head.assign(part) for part in x.split(4096)])
    return q.argmax(1).numpy(), step


if __name__ == "__main__":
    sys.exit(main())
