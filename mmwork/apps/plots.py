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


# -- generators ------------------------------------------------------------------------------------
def _pixels(images) -> np.ndarray:
    """(N, H, W) float array from a tensor or array of shape (N, 1, H, W) or (N, H, W)."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, 1, H, W) or (N, H, W), got {images.shape}")
    return images


def _tile(images: np.ndarray, nrow: int, pad: int = 2) -> np.ndarray:
    """One mosaic of ``nrow`` rows (the last row padded with blanks), ``pad`` pixels between tiles."""
    n, h, w = images.shape
    ncol = -(-n // nrow)
    mosaic = np.ones((nrow * (h + pad) - pad, ncol * (w + pad) - pad), dtype=np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, ncol)
        mosaic[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = image
    return mosaic


def sample_grid(images, nrow: int, row_titles=None, title: str = "", scale: float = 0.45):
    """Images (N, 1, H, W) in ``nrow`` rows of one mosaic (white gaps), pixels 0 = black, 1 = white;
    ``row_titles`` label the rows (e.g. the class each row was conditioned on). Returns the Figure.

    >>> import numpy as np
    >>> fig = sample_grid(np.random.default_rng(0).random((20, 1, 28, 28)), nrow=2, row_titles=["a", "b"])
    >>> len(fig.axes[0].get_yticks())
    2
    """
    import matplotlib.pyplot as plt
    pixels = _pixels(images)
    if row_titles is not None and len(row_titles) != nrow:
        raise ValueError(f"row_titles must have one title per row ({nrow}), got {len(row_titles)}")
    mosaic = _tile(pixels, nrow)
    h = pixels.shape[1]
    fig, ax = plt.subplots(figsize=(max(2.5, scale * mosaic.shape[1] / h), max(1.0, scale * mosaic.shape[0] / h)))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    if row_titles is None:
        ax.set_yticks([])
    else:
        ax.set_yticks(np.arange(nrow) * (h + 2) + h / 2, [str(t) for t in row_titles], fontsize=8)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.tick_params(length=0)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def interpolation_strip(frames, row_titles=None, title: str = ""):
    """Latent interpolations: ``frames`` (rows, steps, 1, H, W), each row decoded along a straight line
    between two latent vectors, the first and last column being the two end points. Returns the Figure.

    >>> import numpy as np
    >>> fig = interpolation_strip(np.random.default_rng(0).random((3, 8, 1, 28, 28)))
    >>> fig.axes[0].get_xlabel()
    'start → end (8 equal steps in latent space)'
    """
    frames = np.asarray(frames.detach().cpu() if hasattr(frames, "detach") else frames, dtype=np.float32)
    if frames.ndim != 5:
        raise ValueError(f"frames must have shape (rows, steps, 1, H, W), got {frames.shape}")
    rows, steps = frames.shape[:2]
    fig = sample_grid(frames.reshape(rows * steps, *frames.shape[2:]), rows, row_titles, title)
    fig.axes[0].set_xlabel(f"start → end ({steps} equal steps in latent space)", fontsize=8)
    return fig


def neighbour_panel(samples, neighbours, distances, title: str = ""):
    """Memorisation check: generated ``samples`` (top row) above their nearest training images
    (bottom row), each pair titled with its distance. Returns the Figure.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((6, 1, 28, 28))
    >>> fig = neighbour_panel(x, x[::-1], np.arange(6.0))
    >>> len(fig.axes)
    12
    """
    import matplotlib.pyplot as plt
    samples, neighbours = _pixels(samples), _pixels(neighbours)
    distances = np.asarray(distances, dtype=float)
    if not len(samples) == len(neighbours) == len(distances):
        raise ValueError(f"one neighbour and one distance per sample: got {len(samples)} samples, "
                         f"{len(neighbours)} neighbours and {len(distances)} distances")
    n = len(samples)
    fig, axes = plt.subplots(2, n, figsize=(0.9 * n + 0.8, 2.3), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(samples[i], cmap="gray", vmin=0, vmax=1)
        axes[1, i].imshow(neighbours[i], cmap="gray", vmin=0, vmax=1)
        axes[1, i].set_title(f"{distances[i]:.2f}", fontsize=7, y=-0.32)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("sample", fontsize=8)
    axes[1, 0].set_ylabel("nearest\ntraining", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def distance_histograms(distances: dict[str, np.ndarray], xlabel: str = "distance to the nearest training image",
                        ax=None):
    """Overlaid histograms (densities) of one distance per example for each named set, with each
    set's median as a dashed line: e.g. generated samples against real test images.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ax = distance_histograms({"samples": rng.random(50), "test": rng.random(50) + 1})
    >>> len(ax.lines)
    2
    """
    ax = _axes(ax, (6, 3))
    values = {k: np.asarray(v, dtype=float) for k, v in distances.items()}
    bins = np.histogram_bin_edges(np.concatenate(list(values.values())), bins=30)
    for name, v in values.items():
        label = f"{name} (n={len(v)}, median {np.median(v):.2f})"
        patches = ax.hist(v, bins=bins, density=True, alpha=0.5, label=label)[2]
        ax.axvline(np.median(v), color=patches[0].get_facecolor(), linestyle="--", alpha=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return ax


def class_shares(predicted, classes, low: float = 0.05, high: float = 0.15, ax=None, title: str = ""):
    """Share of samples per predicted class (bars), with the band [``low``, ``high``] a balanced
    generator should stay within (issue 11: 5% to 15% for 10 classes) shaded.

    >>> ax = class_shares([0, 1, 1, 2], ["a", "b", "c"])
    >>> [round(float(p.get_height()), 2) for p in ax.patches][:3]
    [0.25, 0.5, 0.25]
    """
    predicted = np.asarray(predicted.detach().cpu() if hasattr(predicted, "detach") else predicted, dtype=int)
    shares = np.bincount(predicted, minlength=len(classes))[:len(classes)] / max(len(predicted), 1)
    ax = _axes(ax, (7, 3))
    ax.bar(np.arange(len(classes)), shares, color="tab:blue")
    ax.axhspan(low, high, color="tab:green", alpha=0.12, label=f"{low:.0%}–{high:.0%}")
    ax.set_xticks(np.arange(len(classes)), [str(c) for c in classes], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(f"share of {len(predicted)} samples")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


_NOT_CURVES = {"epoch", "seconds", "images_per_s", "beta"}


def history_curves(histories: dict[str, list[dict]], columns=None, per_row: int = 3):
    """Per-epoch curves of generators' ``history_`` (one panel per model, ``per_row`` panels a row;
    every numeric column but the epoch, timings and the KL weight, or only ``columns``); validation
    columns dashed. Returns the Figure.

    >>> fig = history_curves({"vae": [{"epoch": 1, "loss": 3.0, "valid_loss": 3.5},
    ...                               {"epoch": 2, "loss": 2.0, "valid_loss": 2.9}]})
    >>> [line.get_label() for line in fig.axes[0].lines]
    ['loss', 'valid_loss']
    """
    import matplotlib.pyplot as plt
    histories = {k: v for k, v in histories.items() if v}
    if not histories:
        raise ValueError("no model with a training history to plot")
    rows, cols = -(-len(histories) // per_row), min(per_row, len(histories))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.ravel()[len(histories):]:
        ax.axis("off")
    for ax, (name, history) in zip(axes.ravel(), histories.items()):
        frame = pd.DataFrame(history)
        wanted = columns or [c for c in frame.columns if c not in _NOT_CURVES]
        for column in [c for c in wanted if c in frame and pd.api.types.is_numeric_dtype(frame[c])]:
            style = "--o" if column.startswith("valid") else "-o"
            ax.plot(frame["epoch"], frame[column], style, markersize=3, label=column)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def spectrograms(mels, sr: int, hop: int, titles=None, fmax: float | None = None, db: bool = True):
    """Log-mel spectrograms side by side: ``mels`` (N, n_mels, frames) in dB (``db=False``: power,
    shown in dB relative to each one's peak); time in seconds from ``sr`` and ``hop``, the mel bands
    up to ``fmax`` (default sr / 2). Returns the Figure.

    >>> import numpy as np
    >>> fig = spectrograms(np.random.default_rng(0).random((2, 32, 40)), sr=8000, hop=128, titles=["a", "b"])
    >>> fig.axes[0].get_title(), round(float(fig.axes[0].get_xlim()[1]), 2)
    ('a', 0.64)
    """
    import matplotlib.pyplot as plt
    mels = np.asarray(mels.detach().cpu() if hasattr(mels, "detach") else mels, dtype=np.float64)
    if mels.ndim == 2:
        mels = mels[None]
    if mels.ndim != 3:
        raise ValueError(f"mels must have shape (N, n_mels, frames), got {mels.shape}")
    if not db:
        mels = 10 * np.log10(np.maximum(mels, 1e-10) / np.maximum(mels.max(axis=(1, 2), keepdims=True), 1e-10))
    n = len(mels)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n + 0.6, 2.6), squeeze=False, sharey=True)
    for i, (ax, mel) in enumerate(zip(axes[0], mels)):
        image = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma",
                          extent=(0, mel.shape[1] * hop / sr, 0, mel.shape[0]))
        ax.set_xlabel("seconds")
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    axes[0, 0].set_ylabel(f"mel band (0–{(fmax or sr / 2) / 1000:g} kHz)")
    fig.colorbar(image, ax=list(axes[0]), format="%+2.0f dB", fraction=0.03)
    return fig


def personalisation_lift(table: pd.DataFrame, chance: float = 50.0, title: str = ""):
    """The judge's view of each condition of ``mmwork.apps.personalise.evaluate`` (its ``evaluation_table``:
    one row per condition with ``pr``, ``swap_pr``, ``lift`` and their ``_low``/``_high`` interval
    ends). Left: mean percentile rank for the target users and for the swap partners, with the
    intervals as error bars and a dashed line at ``chance`` (what a random item gets: 50 on the 0-100
    scale). Right: the lift (target / swap) with its interval and a dashed line at 1. Returns the Figure.

    >>> table = pd.DataFrame({"pr": [70.0, 50.0], "pr_low": [65.0, 45.0], "pr_high": [75.0, 55.0],
    ...                       "swap_pr": [60.0, 50.0], "swap_low": [55.0, 46.0], "swap_high": [64.0, 54.0],
    ...                       "lift": [1.17, 1.0], "lift_low": [1.1, 0.95], "lift_high": [1.25, 1.05]},
    ...                      index=pd.Index(["generated", "random"], name="condition"))
    >>> fig = personalisation_lift(table)
    >>> [ax.get_xlabel() for ax in fig.axes]
    ['mean percentile rank (95% interval)', 'lift: target / swap (95% interval)']
    """
    import matplotlib.pyplot as plt
    frame = table.set_index("condition") if "condition" in table.columns else table
    missing = sorted({"pr", "pr_low", "pr_high", "swap_pr", "swap_low", "swap_high", "lift", "lift_low",
                      "lift_high"} - set(frame.columns))
    if missing:
        raise ValueError(f"the table lacks {missing}; pass mmwork.apps.personalise.evaluation_table(result)")
    names = [str(name) for name in frame.index]
    y = np.arange(len(names))[::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.55 * len(names) + 1.6), sharey=True)
    for offset, (column, low, high, label) in zip((0.15, -0.15), (
            ("pr", "pr_low", "pr_high", "for the target user"),
            ("swap_pr", "swap_low", "swap_high", "for other users (swap test)"))):
        values = frame[column].to_numpy(float)
        errors = [values - frame[low].to_numpy(float), frame[high].to_numpy(float) - values]
        left.errorbar(values, y + offset, xerr=errors, fmt="o", capsize=3, label=label)
    left.axvline(chance, color="grey", linestyle="--", label=f"chance ({chance:g})")
    left.set_yticks(y, names)
    left.set_xlabel("mean percentile rank (95% interval)")
    left.legend(fontsize=8)
    lift = frame["lift"].to_numpy(float)
    right.errorbar(lift, y, xerr=[lift - frame["lift_low"].to_numpy(float), frame["lift_high"].to_numpy(float) - lift],
                   fmt="o", color="tab:purple", capsize=3)
    right.axvline(1.0, color="grey", linestyle="--")
    right.set_xlabel("lift: target / swap (95% interval)")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def quality_diversity_curves(curves: dict[str, pd.DataFrame], ax=None, title: str = ""):
    """Quality (BLEU, y) against diversity (self-BLEU, x; lower is more diverse) for each model's
    temperature sweep (``mmwork.evaluation.text_generation.quality_diversity`` tables), one line per
    model with each point labelled by its temperature. Better is up (closer to the references) and
    left (less alike among themselves); compare whole curves, not single points.

    >>> curve = pd.DataFrame({"temperature": [0.7, 1.0], "bleu": [0.3, 0.2], "self_bleu": [0.5, 0.3]})
    >>> ax = quality_diversity_curves({"MLE": curve})
    >>> [t.get_text() for t in ax.texts], ax.get_xlabel()
    (['T=0.7', 'T=1'], 'self-BLEU-4 (lower: more diverse)')
    """
    ax = _axes(ax, (6, 4.5))
    for name, curve in curves.items():
        missing = sorted({"temperature", "bleu", "self_bleu"} - set(curve.columns))
        if missing:
            raise ValueError(f"the curve of {name} lacks {missing}; pass quality_diversity() tables")
        curve = curve.sort_values("temperature")
        line, = ax.plot(curve["self_bleu"], curve["bleu"], "-o", markersize=4, label=name)
        for x, y, t in zip(curve["self_bleu"], curve["bleu"], curve["temperature"]):
            ax.annotate(f"T={t:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7,
                        color=line.get_color())
    ax.set_xlabel("self-BLEU-4 (lower: more diverse)")
    ax.set_ylabel("BLEU-4 against the test references (higher: better)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def coherence_heatmaps(matrices: dict[str, pd.DataFrame], title: str = ""):
    """One heatmap per model of conditional coherence (rows: the given modalities, columns: the generated
    one; 0.1 is chance for ten classes), the value written in each cell."""
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, len(matrices), figsize=(3.6 * len(matrices), 3.4), squeeze=False)
    for ax, (name, matrix) in zip(axes[0], matrices.items()):
        values = matrix.to_numpy(dtype=float)
        image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(matrix.shape[1]), matrix.columns)
        ax.set_yticks(range(matrix.shape[0]), matrix.index if ax is axes[0][0] else [""] * matrix.shape[0])
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black")
        ax.set_title(name)
        ax.set_xlabel("generated")
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="coherence")
    if title:
        figure.suptitle(title)
    return figure


def completion_panel(shown: pd.DataFrame, width: int = 60):
    """For each unit (a row of :func:`mmwork.evaluation.completion.show_completions`): its real sprite and
    the retrieved one, with the start of the real and the retrieved description under them."""
    import textwrap

    import matplotlib.pyplot as plt
    from PIL import Image
    figure, axes = plt.subplots(len(shown), 2, figsize=(9, 2.6 * len(shown)), squeeze=False)
    for row, (_, unit) in zip(axes, shown.iterrows()):
        for ax, (path, text, who) in zip(row, ((unit["real_image"], unit["real_text"], f"real: {unit['item_id']}"),
                                               (unit["retrieved_image"], unit["retrieved_text"],
                                                f"completed -> {unit['retrieved_image_unit']} (sprite), "
                                                f"{unit['retrieved_text_unit']} (text)"))):
            with Image.open(path) as image:
                ax.imshow(image.convert("RGBA"))
            ax.set_title(who, fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_xlabel(textwrap.fill(str(text)[:160], width), fontsize=7)
    figure.tight_layout()
    return figure
