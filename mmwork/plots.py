"""Figures the notebooks show, as small functions that take data and return a matplotlib Axes.

>>> ax = metric_bars(result, ["ndcg@10", "recall@10"])      # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def _axes(ax, figsize=(7, 4)):
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def metric_bars(result, metrics=("ndcg@10", "recall@10"), ax=None):
    """Mean of each metric per model with its 95% confidence interval over the test users."""
    from scipy import stats
    ax = _axes(ax)
    names = list(result.rankings)
    width = 0.8 / len(metrics)
    for j, label in enumerate(metrics):
        metric = label.split("@")[0]
        means, halves = [], []
        for name in names:
            values = result.rankings[name].metrics[metric]
            means.append(values.mean())
            halves.append(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
        ax.bar(np.arange(len(names)) + j * width, means, width, yerr=halves, capsize=3, label=label)
    ax.set_xticks(np.arange(len(names)) + width * (len(metrics) - 1) / 2, names)
    ax.set_ylabel("mean over test users (95% CI)")
    ax.legend()
    ax.set_title(f"{result.setup['protocol']} protocol, {result.setup['evaluated_users']} users")
    return ax


def training_curves(histories: dict[str, list[dict]], ax=None):
    """Training loss (left) and validation NDCG@10 (right axis) per epoch for each model that has a history."""
    ax = _axes(ax)
    right = ax.twinx()
    for name, history in histories.items():
        if not history:
            continue
        frame = pd.DataFrame(history)
        if "loss" in frame:
            ax.plot(frame["epoch"], frame["loss"] / frame["loss"].iloc[0], label=f"{name} loss (relative)")
        valid = [c for c in frame.columns if c.startswith("valid")]
        if valid:
            points = frame.dropna(subset=[valid[0]])
            right.plot(points["epoch"], points[valid[0]], "--o", markersize=3, label=f"{name} {valid[0]}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss / first-epoch loss")
    right.set_ylabel("validation metric")
    lines = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    ax.legend(lines, labels, fontsize=8)
    return ax


def feature_box(values: pd.DataFrame, value: str, by: str, ax=None):
    """Box plot of one feature value per group (e.g. MFCC 0 per speech category)."""
    ax = _axes(ax)
    order = values.groupby(by)[value].median().sort_values().index
    ax.boxplot([values.loc[values[by] == g, value] for g in order], tick_labels=list(order))
    ax.set_xlabel(by)
    ax.set_ylabel(value)
    ax.tick_params(axis="x", rotation=45)
    return ax


def spectrogram(path: str, ax=None, n_mels: int = 64):
    """Log-mel spectrogram of an audio file at its native rate."""
    import librosa
    import librosa.display
    from mmwork.features.audio import load_audio
    y, sr = load_audio(path)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=n_mels), ref=np.max)
    ax = _axes(ax, (7, 3))
    image = librosa.display.specshow(mel, sr=sr, x_axis="time", y_axis="mel", ax=ax)
    ax.figure.colorbar(image, ax=ax, format="%+2.0f dB")
    return ax


def projection(vectors: np.ndarray, labels, ax=None, title: str = ""):
    """2-D PCA projection of feature vectors, coloured by label; each axis says how much of the
    variance its component explains."""
    from sklearn.decomposition import PCA
    pca = PCA(n_components=2, random_state=0)
    points = pca.fit_transform(np.asarray(vectors, dtype=np.float32))
    ax = _axes(ax, (6, 5))
    labels = pd.Series(list(labels)).astype(str)
    for label in sorted(labels.unique()):
        mask = (labels == label).to_numpy()
        ax.scatter(points[mask, 0], points[mask, 1], s=8, label=label, alpha=0.7)
    ax.legend(fontsize=7, markerscale=2, ncol=2)
    ax.set_xlabel(f"PC1 ({pca.explained_variance_ratio_[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({pca.explained_variance_ratio_[1]:.0%} of variance)")
    ax.set_title(title or "PCA projection")
    return ax


def image_grid(images, labels, columns: int = 8):
    """A grid of images with their labels."""
    import matplotlib.pyplot as plt
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.4))
    for ax, image, label in zip(np.ravel(axes), images, labels):
        ax.imshow(image, cmap="gray")
        ax.set_title(str(label), fontsize=7)
    for ax in np.ravel(axes):
        ax.axis("off")
    return fig
