"""MultiVae 1.0.3's side of benchmarks/cross_modal.py, run inside benchmarks/.venvs/multivae (built by
benchmarks/multivae_env.sh) as a child process; it never imports mmwork as a package.

    python multivae_runner.py DIR      # DIR holds data.npz and args.json; writes DIR/<model>.npz, DIR/<model>.json

data.npz holds ``<split>/<modality>`` arrays (split: train, valid, test) and ``<split>/labels``;
args.json: ``models`` (any of "mvae", "mopoe", "mmvae+"), ``specs`` (modality -> kind, shape,
vocab_size), ``networks`` (the path of mmwork/models/generators/multimodal/networks.py), seed, epochs,
latent, width, hidden, batch_size, lr, beta, threads, joint_n, style_dim and mmvae_k (MMVAE+'s
modality-specific latent size and importance samples).

Each model gets the very networks mmwork's MultimodalVAE trains (``make_encoder`` / ``make_decoder``,
loaded by file path), wrapped as MultiVae encoders/decoders; the likelihoods are MultiVae's own
("bernoulli" on the image decoder's logits, grey levels as targets: the binary cross-entropy,
"normal" with scale 1 on sequences and vectors,
"categorical" on token logits; token ids travel one-hot, as MultiVae's categorical expects) and
weighted as mmwork's ``rescale`` (default "none": a plain sum; "dimension": the largest modality's value
count over each one's).
MMVAE+ has modality-specific latents: its encoders and decoders are the same networks built for
``latent + style_dim``, their outputs split into the shared and the private part. MultiVae's
``BaseTrainer`` trains (Adam), keeps the epoch with the lowest validation loss, and each training
epoch is timed (train_step only, as mmwork's history times its training loop). Then, on the test
rows: ``predict`` (a posterior draw, decoded) for every non-empty proper subset of modalities given,
into each missing one, and ``joint_n`` joint samples through ``generate_from_prior`` + ``decode``;
outputs in data space (image probabilities, sequence means, token ids = argmax). Also the latent
means given every modality (``encode(..., return_mean=True)``) of the train and test rows, for the
parent's linear probe.
"""
import importlib.util
import json
import os
import sys
import tempfile
import time
from importlib.metadata import version
from itertools import combinations

import numpy as np
import torch


def load_networks(path):
    spec = importlib.util.spec_from_file_location("mmwork_networks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wrappers():
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn.base_architectures import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        """mmwork's encoder; one-hot tokens back to ids; MMVAE+: the output split at ``latent``."""

        def __init__(self, net, tokens, latent, private):
            super().__init__()
            self.net, self.tokens, self.latent, self.private = net, tokens, latent, private

        def forward(self, x):
            mu, logvar = self.net(x.argmax(-1) if self.tokens else x)
            if not self.private:
                return ModelOutput(embedding=mu, log_covariance=logvar)
            k = self.latent
            return ModelOutput(embedding=mu[:, :k], log_covariance=logvar[:, :k],
                               style_embedding=mu[:, k:], style_log_covariance=logvar[:, k:])

    class Decoder(BaseDecoder):
        """mmwork's decoder on z of any leading shape ((N, D) or (K, N, D))."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, z):
            out = self.net(z.reshape(-1, z.shape[-1]))
            return ModelOutput(reconstruction=out.reshape(*z.shape[:-1], *out.shape[1:]))
    return Encoder, Decoder


DIST = {"image": "bernoulli", "sequence": "normal", "vector": "normal", "tokens": "categorical"}


def build(name, args, networks):
    from multivae.models import MVAE, MMVAEPlus, MMVAEPlusConfig, MoPoE, MoPoEConfig, MVAEConfig
    Encoder, Decoder = wrappers()
    specs, latent = args["specs"], args["latent"]
    private = name == "mmvae+"
    size = latent + (args["style_dim"] if private else 0)
    encoders, decoders = {}, {}
    for m, s in specs.items():
        common = dict(vocab_size=s.get("vocab_size"), width=args["width"], hidden=args["hidden"])
        encoders[m] = Encoder(networks.make_encoder(s["kind"], s["shape"], size, **common), s["kind"] == "tokens",
                              latent, private)
        decoders[m] = Decoder(networks.make_decoder(s["kind"], s["shape"], size, **common))
    counts = {m: networks.n_values(s["kind"], s["shape"]) for m, s in specs.items()}
    shared = dict(n_modalities=len(specs), latent_dim=latent,
                  input_dims={m: tuple(s["shape"]) + ((s["vocab_size"],) if s["kind"] == "tokens" else ())
                              for m, s in specs.items()},
                  decoders_dist={m: DIST[s["kind"]] for m, s in specs.items()},
                  uses_likelihood_rescaling=args.get("rescale", "none") == "dimension",
                  rescale_factors={m: max(counts.values()) / c for m, c in counts.items()})
    if name == "mvae":
        # every subset ELBO (k random subsets beyond the joint and unimodal ones: with 3 modalities
        # k=3 covers the pairs on average); no KL warm-up, as mmwork's default
        config, klass = MVAEConfig(**shared, k=args.get("mvae_k", 3), warmup=0, beta=args["beta"]), MVAE
    elif name == "mopoe":
        config, klass = MoPoEConfig(**shared, beta=args["beta"]), MoPoE
    elif name == "mmvae+":
        config, klass = MMVAEPlusConfig(**shared, modalities_specific_dim=args["style_dim"], K=args["mmvae_k"],
                                        beta=args["beta"]), MMVAEPlus
    else:
        raise SystemExit(f"unknown model {name!r}")
    return klass(config, encoders=encoders, decoders=decoders)


def as_model_input(x, spec):
    x = torch.from_numpy(np.asarray(x))
    if spec["kind"] == "tokens":
        return torch.nn.functional.one_hot(x.long(), spec["vocab_size"]).float()
    return x.float()


def to_data_space(out, spec):
    if spec["kind"] == "image":
        return torch.sigmoid(out).numpy().astype(np.float32)
    if spec["kind"] == "tokens":
        return out.argmax(-1).numpy().astype(np.int64)
    return out.numpy().astype(np.float32)


def run(name, folder, args, data, networks):
    from multivae.data.datasets.base import MultimodalBaseDataset
    from multivae.trainers import BaseTrainer, BaseTrainerConfig
    specs = args["specs"]
    split = {s: MultimodalBaseDataset({m: as_model_input(data[f"{s}/{m}"], specs[m]) for m in specs},
                                      torch.from_numpy(data[f"{s}/labels"]).long()) for s in ("train", "valid", "test")}
    torch.manual_seed(args["seed"])
    np.random.seed(args["seed"])  # MMVAE+ picks a modality with numpy's global generator
    model = build(name, args, networks)
    params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as out:
        config = BaseTrainerConfig(output_dir=out, num_epochs=args["epochs"], learning_rate=args["lr"],
                                   per_device_train_batch_size=args["batch_size"],
                                   per_device_eval_batch_size=256, seed=args["seed"], no_cuda=True)
        trainer = BaseTrainer(model=model, train_dataset=split["train"], eval_dataset=split["valid"],
                              training_config=config)
        epoch_seconds, eval_losses, step, evaluate = [], [], trainer.train_step, trainer.eval_step

        def timed_step(epoch):
            started = time.perf_counter()
            result = step(epoch)
            epoch_seconds.append(time.perf_counter() - started)
            return result

        def logged_eval(epoch):
            loss, metrics = evaluate(epoch)
            eval_losses.append(float(loss))
            return loss, metrics
        trainer.train_step, trainer.eval_step = timed_step, logged_eval
        started = time.perf_counter()
        trainer.train()
        fit_wall = time.perf_counter() - started
        best = trainer._best_model  # what MultiVae saves as its final model: the lowest validation loss
    best.eval()
    names, test = list(specs), split["test"]
    outputs, started = {}, time.perf_counter()
    torch.manual_seed(args["seed"] + 1)
    np.random.seed(args["seed"] + 1)
    with torch.no_grad():
        for k in range(1, len(names)):
            for given in combinations(names, k):
                targets = [m for m in names if m not in given]
                parts = {m: [] for m in targets}
                for s in range(0, len(test), 500):
                    rows = MultimodalBaseDataset({m: x[s:s + 500] for m, x in test.data.items()})
                    pred = best.predict(rows, cond_mod=list(given), gen_mod=targets)
                    for m in targets:
                        parts[m].append(pred[m])
                for m in targets:
                    outputs[f"cond/{'+'.join(given)}/{m}"] = to_data_space(torch.cat(parts[m]), specs[m])
        joint, left = {m: [] for m in names}, args["joint_n"]
        while left > 0:
            n = min(500, left)
            decoded = best.decode(best.generate_from_prior(max(n, 2)), names)  # n=1 would drop its batch axis
            for m in names:
                joint[m].append(decoded[m][:n])
            left -= n
        for m in names:
            outputs[f"joint/{m}"] = to_data_space(torch.cat(joint[m]), specs[m])
        for s in ("train", "test"):  # the latent means given every modality, for the parent's linear probe
            rows = split[s]
            outputs[f"latent/{s}"] = torch.cat([
                best.encode(MultimodalBaseDataset({m: x[i:i + 500] for m, x in rows.data.items()}),
                            return_mean=True).z for i in range(0, len(rows), 500)]).numpy()
    generate_wall = time.perf_counter() - started
    np.savez_compressed(os.path.join(folder, f"{name}.npz"), **outputs)
    result = {"model": name, "library": f"multivae {version('multivae')}", "torch": torch.__version__,
              "params": params, "epochs": args["epochs"], "fit_wall_s": fit_wall, "epoch_seconds": epoch_seconds,
              "valid_losses": eval_losses,
              "best_epoch": int(np.argmin(eval_losses)) + 1 if eval_losses else None,
              "generate_wall_s": generate_wall}
    json.dump(result, open(os.path.join(folder, f"{name}.json"), "w"))
    return result


def main(folder):
    args = json.load(open(os.path.join(folder, "args.json")))
    torch.set_num_threads(args["threads"])
    # MNIST pixels are grey levels in [0, 1]: torch's Bernoulli refuses them as values when it validates,
    # while its log_prob is the binary cross-entropy mmwork uses on the same logits
    torch.distributions.Distribution.set_default_validate_args(False)
    import logging
    logging.getLogger("multivae").setLevel(logging.WARNING)
    networks = load_networks(args["networks"])
    data = dict(np.load(os.path.join(folder, "data.npz")))
    for name in args["models"]:
        result = run(name, folder, args, data, networks)
        print(json.dumps({k: v for k, v in result.items() if k != "valid_losses"}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
