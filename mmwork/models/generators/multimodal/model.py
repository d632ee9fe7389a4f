"""A multimodal VAE: one encoder and one decoder per modality, a fusion of whichever modalities are
given into one posterior, trained so that any subset can generate any modality.

Training draws, for every example at every step, one subset of its modalities (uniformly among
``subsets``, by default every non-empty one), fuses those modalities' encodings into q(z | subset),
and maximises an ELBO of *all* the example's modalities under that posterior: the (optionally rescaled)
log-likelihood of every modality decoded from z, minus beta KL(q || N(0, I)). Any q gives a lower
bound on log p(x), so every term is an ELBO; the subset terms are what let a product of experts
cross-generate (MVAE's sub-sampling), and they make the attention fusion work on any subset. The
mixtures keep their published estimators: "moe" is stratified (one z per available expert, log
q_mix(z) - log p(z) for the KL, as MMVAE), "mopoe" draws one subset's product per example and uses
the mean of the subsets' KLs (as MoPoE).

>>> import torch
>>> from mmwork.models.generators import MultimodalVAE
>>> g = torch.Generator().manual_seed(0)
>>> data = {"image": torch.rand(32, 1, 28, 28, generator=g), "audio": torch.randn(32, 16, 13, generator=g)}
>>> model = MultimodalVAE(fusion="poe", epochs=1, width=4, hidden=16, device="cpu").fit(data)
>>> out = model.generate(["image"], {"audio": data["audio"][:3]}, seed=1)
>>> tuple(out["image"].shape), sorted(model.sample(2, seed=0))
((3, 1, 28, 28), ['audio', 'image'])
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from mmwork.core.device import resolve_device
from mmwork.core.errors import MmworkError
from mmwork.models.generators.base import Generator, Training
from mmwork.models.generators.multimodal import fusion as F
from mmwork.models.generators.multimodal.config import MultimodalVAEConfig, vocab_size
from mmwork.models.generators.multimodal.inputs import check_array, specs_of
from mmwork.models.generators.multimodal.networks import log_likelihood, make_decoder, make_encoder, mean, n_values
from mmwork.models.network import Preset
from mmwork.models.training import read_checkpoint


class MultimodalNet(nn.Module):
    """The encoders, the fusion and the decoders of the modalities in ``config`` (in its order)."""

    def __init__(self, config: MultimodalVAEConfig):
        super().__init__()
        self.names, self.fusion = list(config.modalities), config.fusion
        self.kinds = {n: s.kind for n, s in config.modalities.items()}
        sizes = dict(latent=config.latent, width=config.width, hidden=config.hidden)
        self.encoders = nn.ModuleDict({n: make_encoder(s.kind, s.shape, vocab_size=vocab_size(s), **sizes)
                                       for n, s in config.modalities.items()})
        self.decoders = nn.ModuleDict({n: make_decoder(s.kind, s.shape, vocab_size=vocab_size(s), **sizes)
                                       for n, s in config.modalities.items()})
        self.attention = F.AttentionFusion([e.features for e in self.encoders.values()], config.latent,
                                           config.attention_dim, config.heads) if config.fusion == "attention" else None

    def posterior(self, xs: dict[str, torch.Tensor], mask: torch.Tensor):
        """q(z | the modalities available in ``mask`` (N, M)) as components: means and log variances
        (K, N, latent) and their validity (N, K); one component unless the fusion is a mixture."""
        n = len(mask)
        like = next(iter(xs.values()))
        if self.attention is not None:
            features = [self.encoders[m].body(xs[m]) if m in xs else
                        torch.zeros(n, self.encoders[m].features, device=like.device) for m in self.names]
            mu, logvar = self.attention(features, mask)
            return mu[None], logvar[None], mask.new_ones(n, 1)
        experts = [self.encoders[m](xs[m]) if m in xs else None for m in self.names]
        shape = next(e[0] for e in experts if e is not None)
        mu = torch.stack([e[0] if e is not None else torch.zeros_like(shape) for e in experts])
        logvar = torch.stack([e[1] if e is not None else torch.zeros_like(shape) for e in experts])
        if self.fusion == "poe":
            mu, logvar = F.poe(mu, logvar, mask)
            return mu[None], logvar[None], mask.new_ones(n, 1)
        return F.components(self.fusion, mu, logvar, mask)

    def decode(self, z: torch.Tensor, names) -> dict[str, torch.Tensor]:
        return {m: self.decoders[m](z) for m in names}


class MultimodalVAE(Generator):
    """See the module docstring. Learned state: ``net_`` (a :class:`MultimodalNet`), ``history_``
    (one dict per epoch: loss, the objective per example; recon, its (weighted) reconstruction part;
    kl; beta; seconds; examples_per_s; and with ``valid``, valid_loss: the same objective on the
    held-out examples, each with one fixed subset), ``best_epoch_``."""

    name = "multimodal-vae"
    config_class = MultimodalVAEConfig
    data_kind = "multimodal"
    presets = (Preset("multimodal-vae", "none", {}, "multimodal VAE over a data set's modalities (digits-av: "
                      "image, audio, text), attention fusion by default (--param fusion=poe|moe|mopoe)"),)
    _state = ("net_",)

    # -- built from the data -------------------------------------------------------------------------
    @classmethod
    def from_data(cls, params: dict | None = None, /, *, condition="none", classes=(), condition_dim=None,
                  mel=None, data=None) -> "MultimodalVAE":
        """The model for ``data`` (a ``MultimodalData``: its modalities, data set and classes)."""
        if condition != "none":
            raise MmworkError(f"{cls.__name__} is unconditional: the given modalities are its condition")
        params = dict(params or {})
        if data is not None:
            params |= {"modalities": specs_of(data), "dataset": getattr(data, "dataset", "") or "",
                       "classes": list(getattr(data, "classes", None) or classes)}
        elif classes:
            params["classes"] = list(classes)
        return cls(params)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", dataset: str | None = None) -> "MultimodalVAE":
        """A saved model; with ``dataset``, one trained on that data set or an error."""
        model = super().load(path, device)
        if dataset is not None and model.config.dataset != dataset:
            raise MmworkError(f"{path} holds a {model.name} trained on data set {model.config.dataset or '?'!r}, "
                              f"not {dataset!r}; train one with: mmwork generate train --dataset {dataset} "
                              f"--model multimodal-vae")
        return model

    def _build(self) -> None:
        self.net_ = MultimodalNet(self.config).eval()

    @property
    def names(self) -> list[str]:
        return list(self.config.modalities)

    # -- training ------------------------------------------------------------------------------------
    def fit(self, data, valid=None, *, checkpoint: str | Path | None = None,
            resume_from: str | Path | None = None) -> "MultimodalVAE":
        """Learn from ``data`` (a ``MultimodalData`` or a dict name -> tensor, every modality of every
        example). ``valid``: held-out data of the same kind (early stopping on the objective, each
        held-out example with one fixed subset) or a callback ``valid(model) -> float`` (lower is
        better). ``checkpoint``/``resume_from`` as for every network model. Returns self."""
        if not self.config.modalities:
            found = {"dataset": self.config.dataset or getattr(data, "dataset", "") or "",
                     "classes": self.config.classes or list(getattr(data, "classes", []) or [])}
            self.config = self.config_class.make(self.config, modalities=specs_of(data), **found)
        xs = self._arrays(data, "data", everything=True)
        measure = valid if valid is None or callable(valid) else self._valid_measure(valid)
        resumed = read_checkpoint(resume_from, self) if resume_from is not None else None
        for name in self._state + ("history_", "best_epoch_"):
            self.__dict__.pop(name, None)
        self.device_ = resolve_device(self.config.device)
        self._init_state()
        self._fit({m: x.to(self.device_) for m, x in xs.items()}, Training(self, measure, checkpoint, resumed))
        return self

    def _fit(self, xs: dict[str, torch.Tensor], training: Training) -> None:
        config, device = self.config, self.device_
        generator = torch.Generator(device).manual_seed(config.seed)
        optimizer = torch.optim.Adam(self.net_.parameters(), lr=config.lr)
        n, size = len(next(iter(xs.values()))), config.batch_size
        steps_per_epoch = -(-n // size)
        warm_steps = config.warmup_epochs * steps_per_epoch
        subsets, weights = self._subsets().to(device), self._weights()
        for epoch in training.epochs(optimizer, generator):
            started = time.perf_counter()
            self.net_.train()
            order = torch.randperm(n, generator=generator, device=device)
            shuffled = {m: x[order] for m, x in xs.items()}
            picks = subsets[torch.randint(len(subsets), (n,), generator=generator, device=device)]
            sums = torch.zeros(3, device=device)
            for i, start in enumerate(range(0, n, size)):
                step = (epoch - 1) * steps_per_epoch + i + 1
                beta = config.beta * (min(1.0, step / warm_steps) if warm_steps else 1.0)
                batch = {m: x[start:start + size] for m, x in shuffled.items()}
                with training.autocast():
                    recon, kl = self._terms(batch, picks[start:start + size], self.names, weights, generator)
                loss = (recon + beta * kl).mean()
                training.step(loss)
                sums += torch.stack([loss.detach() * len(recon), recon.detach().sum(), kl.detach().sum()])
            self.net_.eval()
            seconds = time.perf_counter() - started
            loss, recon, kl = (sums / n).tolist()
            training.end_epoch({"loss": loss, "recon": recon, "kl": kl, "beta": beta, "seconds": seconds,
                                "examples_per_s": n / seconds})

    def _terms(self, xs, mask, targets, weights, generator, stratify: bool = False, dtype=torch.float32):
        """Per example: -sum_m w_m log p(x_m|z) over ``targets`` and the KL term, for z from q(z | the
        modalities in ``mask``). A mixture is stratified (one z per valid component, averaged, the KL
        as log q(z) - log p(z)) for "moe" and when ``stratify``; otherwise "mopoe" draws one component
        per example and takes the mean of the components' KLs."""
        mu, logvar, valid = self.net_.posterior(xs, mask)
        mu, logvar = mu.to(dtype), logvar.to(dtype)
        k, n = mu.shape[:2]
        kl = None
        if k > 1 and not (stratify or self.config.fusion == "moe"):
            kl = (F.kl_standard(mu, logvar) * valid.T).sum(0) / valid.sum(1)
            mu, logvar = (t[None] for t in F.pick(mu, logvar, valid, generator))
            valid = valid.new_ones(n, 1)
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=dtype)
        z = mu + noise * torch.exp(0.5 * logvar)                                     # (K, N, latent)
        outs = self.net_.decode(z.reshape(-1, z.shape[-1]).float(), targets)
        recon = 0
        for m in targets:
            x = xs[m].repeat(len(z), *[1] * (xs[m].ndim - 1))
            x = x.to(dtype) if x.is_floating_point() else x
            recon = recon - weights[m] * log_likelihood(self.net_.kinds[m], outs[m].to(dtype), x).view(len(z), n)
        if len(z) == 1:
            return recon[0], kl if kl is not None else F.kl_standard(mu[0], logvar[0])
        log_q = torch.stack([F.log_mixture(zk, mu, logvar, valid) for zk in z])     # (K, N)
        kls = log_q - F.log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        share = valid.T.to(dtype) / valid.sum(1).to(dtype)
        return (share * recon).sum(0), (share * kls).sum(0)

    def _subsets(self) -> torch.Tensor:
        """The training subsets as masks (S, M)."""
        if self.config.subsets is None:
            return F.subset_masks(len(self.names))
        return torch.tensor([[m in s for m in self.names] for s in self.config.subsets], dtype=torch.bool)

    def _weights(self) -> dict[str, float]:
        """Each modality's likelihood weight (``rescale``)."""
        sizes = {m: n_values(s.kind, s.shape) for m, s in self.config.modalities.items()}
        if self.config.rescale == "none":
            return {m: 1.0 for m in sizes}
        return {m: max(sizes.values()) / size for m, size in sizes.items()}

    def _valid_measure(self, valid):
        xs = self._arrays(valid, "valid data", everything=True)
        n = len(next(iter(xs.values())))
        subsets = self._subsets()
        picks = subsets[torch.randint(len(subsets), (n,), generator=torch.Generator().manual_seed(0))]

        @torch.no_grad()
        def measure(model: "MultimodalVAE") -> float:
            generator = torch.Generator(model.device_).manual_seed(0)
            weights, total = model._weights(), 0.0
            for s in range(0, n, model.config.batch_size):
                batch = {m: x[s:s + model.config.batch_size].to(model.device_) for m, x in xs.items()}
                recon, kl = model._terms(batch, picks[s:s + model.config.batch_size].to(model.device_),
                                         model.names, weights, generator)
                total += float((recon + model.config.beta * kl).sum())
            return total / n
        return measure

    # -- evaluation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def elbo(self, inputs, seed: int = 0) -> torch.Tensor:
        """The ELBO of the given modalities per example in nats (float64, no rescaling): log p(x_S|z)
        for z ~ q(z|x_S) drawn with ``seed``, minus KL(q || N(0, I)) (closed form for one Gaussian;
        for a mixture, every component's draw with log q(z) - log p(z), averaged)."""
        xs, n = self._given(inputs)
        names = list(xs)
        mask = torch.tensor([m in xs for m in self.names], device=self.device_).expand(n, -1)
        generator = torch.Generator(self.device_).manual_seed(seed)
        size, ones = self.config.batch_size, {m: 1.0 for m in names}
        parts = []
        for s in range(0, n, size):
            recon, kl = self._terms({m: x[s:s + size] for m, x in xs.items()}, mask[s:s + size], names, ones,
                                    generator, stratify=True, dtype=torch.float64)
            parts.append(-(recon + kl))
        return torch.cat(parts)

    # -- encoding, generating, sampling --------------------------------------------------------------
    @torch.no_grad()
    def encode(self, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | the given modalities): mean and log variance per example, each (N, latent); for the
        mixtures ("moe", "mopoe"), the mixture's mean and the log of its variance (moment matching)."""
        xs, n = self._given(inputs)
        mask = torch.tensor([m in xs for m in self.names], device=self.device_).expand(n, -1)
        size, mus, logvars = self.config.batch_size, [], []
        for s in range(0, n, size):
            mu, logvar, valid = self.net_.posterior({m: x[s:s + size] for m, x in xs.items()}, mask[s:s + size])
            mu, logvar = F.moments(mu, logvar, valid) if len(mu) > 1 else (mu[0], logvar[0])
            mus.append(mu), logvars.append(logvar)
        return torch.cat(mus), torch.cat(logvars)

    @torch.no_grad()
    def generate(self, targets, given, seed: int = 0, *, mean_z: bool = False) -> dict[str, torch.Tensor]:
        """Each of ``targets`` (modality names) generated from the ``given`` ones (a dict name ->
        tensor, N rows), one per row: z drawn from q(z | given) with ``seed`` (a mixture first draws
        its component; ``mean_z``: the posterior's mean instead), decoded to its most likely value:
        images in [0, 1], sequences and vectors as (standardised) means, tokens as ids (N, L)."""
        targets = self._targets(targets)
        xs, n = self._given(given)
        mask = torch.tensor([m in xs for m in self.names], device=self.device_).expand(n, -1)
        generator = torch.Generator(self.device_).manual_seed(seed)
        size, outs = self.config.batch_size, []
        for s in range(0, n, size):
            mu, logvar, valid = self.net_.posterior({m: x[s:s + size] for m, x in xs.items()}, mask[s:s + size])
            mu, logvar = F.pick(mu, logvar, valid, generator) if len(mu) > 1 else (mu[0], logvar[0])
            noise = torch.randn(mu.shape, generator=generator, device=mu.device)
            z = mu if mean_z else mu + noise * torch.exp(0.5 * logvar)
            outs.append(self._decode(z, targets))
        return {m: torch.cat([o[m] for o in outs]) for m in targets}

    @torch.no_grad()
    def sample(self, n: int, condition=None, seed: int = 0) -> dict[str, torch.Tensor]:
        """``n`` joint samples, every modality decoded from the same z ~ N(0, I) drawn with ``seed``."""
        z, _ = self._draw_noise(n, self.config.latent, condition, seed)
        size = self.config.batch_size
        outs = [self._decode(z[s:s + size], self.names) for s in range(0, n, size)]
        return {m: torch.cat([o[m] for o in outs]) for m in self.names}

    @torch.no_grad()
    def decode(self, z, targets=None) -> dict[str, torch.Tensor]:
        """The most likely value of each of ``targets`` (default: all) for latent vectors z (N, latent)."""
        self._check_fitted()
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device_)
        if z.ndim != 2 or z.shape[1] != self.config.latent:
            raise MmworkError(f"latent vectors must have shape (N, {self.config.latent}), got {tuple(z.shape)}")
        targets = self._targets(self.names if targets is None else targets)
        size = self.config.batch_size
        outs = [self._decode(z[s:s + size], targets) for s in range(0, len(z), size)]
        return {m: torch.cat([o[m] for o in outs]) for m in targets}

    def _decode(self, z, targets) -> dict[str, torch.Tensor]:
        return {m: mean(self.net_.kinds[m], out.float()) for m, out in self.net_.decode(z, targets).items()}

    # -- input checks (all before any compute) -------------------------------------------------------
    def _given(self, inputs) -> tuple[dict[str, torch.Tensor], int]:
        self._check_fitted()
        xs = self._arrays(inputs, "inputs")
        return {m: x.to(self.device_) for m, x in xs.items()}, len(next(iter(xs.values())))

    def _targets(self, targets) -> list[str]:
        targets = [targets] if isinstance(targets, str) else list(targets or [])
        if not targets:
            raise MmworkError(f"no target modality: name one or more of {', '.join(self.names)}")
        self._known(targets)
        return list(dict.fromkeys(targets))

    def _known(self, names) -> None:
        unknown = [m for m in names if m not in self.config.modalities]
        if unknown:
            raise MmworkError(f"{self.name} was trained on {', '.join(self.names)}; it knows no modality "
                              f"{', '.join(map(repr, unknown))}")

    def _arrays(self, data, what: str, everything: bool = False) -> dict[str, torch.Tensor]:
        """``data`` (a ``MultimodalData`` or a dict name -> tensor) checked against the modalities:
        known names, a non-empty subset (all of them when ``everything``), shapes, types and values,
        one row count; as CPU tensors."""
        dataset = getattr(data, "dataset", None)
        if dataset and self.config.dataset and dataset != self.config.dataset:
            raise MmworkError(f"{what} come from data set {dataset!r} but this {self.name} is for "
                              f"{self.config.dataset!r}; train one on {dataset}")
        arrays = getattr(data, "arrays", data)
        if not isinstance(arrays, dict):
            raise MmworkError(f"{what} must be a dict modality name -> tensor (or a MultimodalData), "
                              f"got {type(data).__name__}")
        if not arrays:
            raise MmworkError(f"{what}: an empty subset of modalities; give at least one of {', '.join(self.names)}")
        self._known(arrays)
        if everything and set(arrays) != set(self.names):
            raise MmworkError(f"{what} must hold every modality ({', '.join(self.names)}), got {', '.join(arrays)}")
        out = {m: check_array(m, self.config.modalities[m], x, what) for m, x in arrays.items()}
        rows = {m: len(x) for m, x in out.items()}
        if len(set(rows.values())) > 1:
            raise MmworkError(f"{what}: the modalities have different numbers of rows "
                              f"({', '.join(f'{m} {r}' for m, r in rows.items())})")
        if not next(iter(rows.values())):
            raise MmworkError(f"{what} hold no rows")
        return {m: out[m] for m in self.names if m in out}

