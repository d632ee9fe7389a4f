"""pythae 0.1.2's side of benchmarks/bench_generators.py, run inside benchmarks/.venvs/pythae (built by
benchmarks/pythae_env.sh) as a child process; it never imports mmwork.

    python pythae_runner.py DIR        # DIR holds train.npy, valid.npy, test.npy (float32 (N, 1, 28, 28) in [0, 1]), args.json

Trains pythae's ``VAE`` with its own MNIST networks (``Encoder_Conv_VAE_MNIST`` /
``Decoder_Conv_AE_MNIST``), BCE, Adam at the given learning rate and batch size, through pythae's own
``BaseTrainer``; then, in eval mode (``get_nll`` does not switch to it, and batch norm over 100 copies
of one image would be meaningless), pythae's ``get_nll`` image by image on valid.npy (validation
images carved from the training split) and on test.npy, negated to nats.
Writes DIR/result.json.

With ``"budget"`` in args.json (CPU-seconds; benchmarks/quality_vs_compute.py) the same model and loss
train instead in a plain step loop (Adam, shuffled batches) that stops once this process has used the
budget, since pythae's trainer stops only at epoch ends; then ``get_nll`` on valid.npy and
``"samples"`` images decoded from z ~ N(0, I) (its decoder's sigmoid output) into DIR/samples.npy.
"""
import json
import os
import sys
import tempfile
import time
from importlib.metadata import version

import numpy as np
import torch


def budgeted(folder: str, args: dict) -> None:
    from pythae.models import VAE, VAEConfig
    from pythae.models.nn.benchmarks.mnist import Decoder_Conv_AE_MNIST, Encoder_Conv_VAE_MNIST
    train = torch.from_numpy(np.load(os.path.join(folder, "train.npy")))
    valid = torch.from_numpy(np.load(os.path.join(folder, "valid.npy")))
    torch.manual_seed(args["seed"])
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=args["latent"], reconstruction_loss="bce")
    model = VAE(config, encoder=Encoder_Conv_VAE_MNIST(config), decoder=Decoder_Conv_AE_MNIST(config))
    optimizer = torch.optim.Adam(model.parameters(), lr=args["lr"])
    started, steps, epochs = time.process_time(), 0, 0.0
    model.train()
    while time.process_time() - started < args["budget"]:
        order = torch.randperm(len(train))
        for begin in range(0, len(train), args["batch_size"]):
            loss = model({"data": train[order[begin:begin + args["batch_size"]]]}).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            epochs += min(args["batch_size"], len(train) - begin) / len(train)
            if time.process_time() - started >= args["budget"]:
                break
    cpu = time.process_time() - started
    model.eval()
    torch.manual_seed(args["seed"])
    with torch.no_grad():
        nll = [-float(model.get_nll(valid[i:i + 1], n_samples=args["k"], batch_size=min(100, args["k"])))
               for i in range(len(valid))]
        samples = model.decoder(torch.randn(args["samples"], args["latent"]))["reconstruction"]
    np.save(os.path.join(folder, "samples.npy"), samples.numpy().astype(np.float32))
    json.dump({"library": f"pythae {version('pythae')}", "torch": torch.__version__, "fit_cpu_s": cpu,
               "steps": steps, "epochs_done": epochs, "valid_nll_per_image": nll},
              open(os.path.join(folder, "result.json"), "w"))


def main(folder: str) -> None:
    args = json.load(open(os.path.join(folder, "args.json")))
    torch.set_num_threads(args["threads"])
    if "budget" in args:
        return budgeted(folder, args)
    from pythae.models import VAE, VAEConfig
    from pythae.models.nn.benchmarks.mnist import Decoder_Conv_AE_MNIST, Encoder_Conv_VAE_MNIST
    from pythae.data.preprocessors import DataProcessor
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    processor = DataProcessor()  # what pythae's TrainingPipeline does with an array
    train = processor.to_dataset(processor.process_data(np.load(os.path.join(folder, "train.npy"))))
    test = torch.from_numpy(np.load(os.path.join(folder, "test.npy")))
    valid = torch.from_numpy(np.load(os.path.join(folder, "valid.npy")))
    torch.manual_seed(args["seed"])  # pythae seeds its trainer, but builds the networks before that
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=args["latent"], reconstruction_loss="bce")
    model = VAE(config, encoder=Encoder_Conv_VAE_MNIST(config), decoder=Decoder_Conv_AE_MNIST(config))
    params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as out:
        training = BaseTrainerConfig(output_dir=out, num_epochs=args["epochs"], learning_rate=args["lr"],
                                     per_device_train_batch_size=args["batch_size"],
                                     per_device_eval_batch_size=args["batch_size"], seed=args["seed"], no_cuda=True)
        trainer = BaseTrainer(model=model, train_dataset=train, training_config=training)
        epoch_seconds, step = [], trainer.train_step

        def timed_step(epoch):
            started = time.perf_counter()
            loss = step(epoch)
            epoch_seconds.append(time.perf_counter() - started)
            return loss
        trainer.train_step = timed_step
        started = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - started
        trained = trainer._best_model  # what pythae saves as its final model (the best training loss)
    trained.eval()
    started = time.perf_counter()
    def nll_of(images):
        torch.manual_seed(args["seed"])
        with torch.no_grad():
            return [-float(trained.get_nll(images[i:i + 1], n_samples=args["k"], batch_size=min(100, args["k"])))
                    for i in range(len(images))]
    nll, valid_nll = nll_of(test), nll_of(valid)
    nll_seconds = time.perf_counter() - started
    result = {"library": f"pythae {version('pythae')}", "torch": torch.__version__, "params": params,
              "train_images": len(train), "epochs": args["epochs"], "fit_wall_s": wall,
              "epoch_seconds": epoch_seconds, "images_per_s": len(train) * len(epoch_seconds) / sum(epoch_seconds),
              "nll_per_image": nll, "valid_nll_per_image": valid_nll, "nll_seconds": nll_seconds}
    json.dump(result, open(os.path.join(folder, "result.json"), "w"))


if __name__ == "__main__":
    main(sys.argv[1])
