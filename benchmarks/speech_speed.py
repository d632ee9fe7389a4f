"""Speech speed and accuracy on the Asterisk prompts (``mmwork data get speech-prompts``), to JSON.

1. Piper's real-time factor (synthesis seconds / seconds of audio made) speaking the transcripts of a
   seeded sample of ``--sample`` prompts, ``--repeats`` times, median of the repeats.
2. Whisper tiny.en's real-time factor (transcription seconds, resampling and features included / seconds
   of audio) on the same sample's real recordings, one clip at a time, greedy and beam 5 alternating in one
   process, ``--repeats`` times, medians; the WER of both on the sample.
3. Whisper's WER (the default decoding, beam 5) on every prompt with a spoken transcript (reference = the
   transcript), once: decoding is deterministic.
4. The round trip: Piper speaks ``--round-trip`` transcripts (a seeded sample, or "all"), Whisper
   transcribes them back (beam 5); WER against the transcripts.

``--parts`` runs some of them and merges their results into the JSON already there.

References: the Asterisk transcript with bracketed notes removed (``[ascending tones]``,
``(9 seconds of silence)``); prompts whose transcript is only such a note, or missing, are left out and
listed. WER normalisation: mmwork.evaluation.wer (lower case, punctuation stripped, numbers as written).
Both models run on one thread (onnxruntime / CTranslate2 intra-op threads 1, OMP_NUM_THREADS=1). Absolute
seconds depend on the load of the shared machine: the load average is recorded before and after each part.

    OMP_NUM_THREADS=1 python benchmarks/speech_speed.py --sample 30 --repeats 3 --round-trip all
    OMP_NUM_THREADS=1 python benchmarks/speech_speed.py --parts wer roundtrip
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from mmwork.evaluation.wer import normalise, utterance_errors, word_error_rate  # noqa: E402
from mmwork.features.audio import load_audio  # noqa: E402
from mmwork.models.speech import Transcriber, Voice  # noqa: E402
from mmwork.store.tables import read_table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "speech_speed.json"
PARTS = ("piper", "rtf", "wer", "roundtrip")
NOTE = re.compile(r"\[[^\]]*\]|\([^)]*\)")


def load() -> dict:
    return {"loadavg": [round(x, 2) for x in os.getloadavg()],
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}


def prompts() -> tuple[list[dict], list[str]]:
    """The prompts with a spoken reference, and the ids of those left out."""
    items = read_table("speech-prompts", "items")
    kept, dropped = [], []
    for row in items.itertuples():
        reference = NOTE.sub(" ", row.text or "").strip()
        if normalise(reference):
            kept.append({"item_id": row.item_id, "audio": row.audio, "reference": reference,
                         "duration_s": float(row.duration_s)})
        else:
            dropped.append(row.item_id)
    return kept, dropped


def rtf_piper(voice: Voice, texts: list[str]) -> dict:
    spent = made = 0.0
    for text in texts:
        start = time.perf_counter()
        waveform, sr = voice.speak(text)
        spent += time.perf_counter() - start
        made += len(waveform) / sr
    return {"seconds": spent, "audio_s": made, "rtf": spent / made}


def rtf_whisper(asr: Transcriber, clips: list[tuple[np.ndarray, int]]) -> dict:
    spent, texts = 0.0, []
    for waveform, sr in clips:
        start = time.perf_counter()
        texts.append(asr.transcribe(waveform, sr))
        spent += time.perf_counter() - start
    audio = sum(len(w) / sr for w, sr in clips)
    return {"seconds": spent, "audio_s": audio, "rtf": spent / audio, "texts": texts}


def median_of(runs: list[dict], key: str = "rtf") -> float:
    return round(float(np.median([r[key] for r in runs])), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=30, help="prompts timed for the real-time factors")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--round-trip", default="all", help="transcripts spoken and heard back, or 'all'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    args = parser.parse_args()

    kept, dropped = prompts()
    rng = np.random.default_rng(args.seed)
    sample = [kept[i] for i in sorted(rng.choice(len(kept), size=min(args.sample, len(kept)), replace=False))]
    result = json.loads(args.out.read_text()) if args.out.is_file() and set(args.parts) != set(PARTS) else {}
    result |= {"protocol": __doc__.split("\n\n")[0].strip(), "threads": 1, "seed": args.seed,
              "prompts": {"total": len(kept) + len(dropped), "with_speech": len(kept), "left_out": dropped},
              "normalisation": "mmwork.evaluation.wer.normalise: NFKC, lower case, apostrophes deleted, other "
                               "punctuation to spaces, numbers as written",
              "sample": {"size": len(sample), "audio_s": round(sum(p["duration_s"] for p in sample), 2),
                         "item_ids": [p["item_id"] for p in sample]}}

    def save():
        write_json(args.out, result)

    voice = Voice.load(seed=args.seed)
    greedy, beam = Transcriber.load(beam_size=1), Transcriber.load(beam_size=5)
    asr = Transcriber.load()  # the default decoding, for parts 3 and 4
    voice.speak("Warm up.")
    clips = [load_audio(p["audio"]) for p in sample]
    greedy.transcribe(*clips[0]), beam.transcribe(*clips[0])

    if "piper" in args.parts:
        piper(args, voice, sample, result)
        save()
    if "rtf" in args.parts:
        whisper_rtf(args, greedy, beam, clips, sample, result)
        save()
    if "wer" in args.parts:
        whisper_wer(asr, kept, result)
        save()
    if "roundtrip" in args.parts:
        round_trip(args, voice, asr, kept, result)
        save()


def piper(args, voice, sample, result) -> None:
    before = load()
    runs = [rtf_piper(voice, [p["reference"] for p in sample]) for _ in range(args.repeats)]
    result["piper"] = {"rtf_median": median_of(runs), "runs": [{k: round(v, 3) for k, v in r.items()} for r in runs],
                       "load_before": before, "load_after": load(), "sample_rate": voice.sample_rate,
                       "what": "seconds to synthesise / seconds of audio made, the sample's transcripts"}
    print("piper", result["piper"]["rtf_median"], flush=True)


def whisper_rtf(args, greedy, beam, clips, sample, result) -> None:
    before, runs = load(), {"greedy": [], "beam5": []}
    for _ in range(args.repeats):
        runs["greedy"].append(rtf_whisper(greedy, clips))
        runs["beam5"].append(rtf_whisper(beam, clips))
    references = [p["reference"] for p in sample]
    result["whisper_rtf"] = {
        name: {"rtf_median": median_of(r), "seconds": [round(x["seconds"], 3) for x in r],
               "wer_sample": round(word_error_rate(references, r[0]["texts"]), 4)} for name, r in runs.items()}
    result["whisper_rtf"]["beam5_over_greedy_time"] = round(float(np.median(
        [b["seconds"] / g["seconds"] for g, b in zip(runs["greedy"], runs["beam5"])])), 3)
    result["whisper_rtf"].update({"load_before": before, "load_after": load(),
                                  "what": "seconds to transcribe (resample, features, decode) / seconds of audio, "
                                          "the sample's real 8 kHz recordings, one clip at a time"})
    print("whisper", {k: v for k, v in result["whisper_rtf"].items() if k.startswith(("greedy", "beam"))}, flush=True)


def whisper_wer(asr, kept, result) -> None:
    before, start = load(), time.perf_counter()
    texts = [asr.transcribe(*load_audio(p["audio"])) for p in kept]
    spent = time.perf_counter() - start
    table = utterance_errors([p["reference"] for p in kept], texts)
    table.insert(0, "item_id", [p["item_id"] for p in kept])
    worst = table.sort_values("wer", ascending=False).head(15)
    result["whisper_wer"] = {
        "prompts": len(kept), "reference_words": int(table.words.sum()),
        "wer": round(word_error_rate([p["reference"] for p in kept], texts), 4),
        "mean_utterance_wer": round(float(table.wer.mean()), 4), "exact": int((table.wer == 0).sum()),
        "rtf_all": round(spent / sum(p["duration_s"] for p in kept), 4), "seconds": round(spent, 1),
        "decoding": f"beam {asr.config.beam_size}", "load_before": before, "load_after": load(),
        "worst": worst[["item_id", "reference", "hypothesis", "wer"]].round(3).to_dict("records")}
    print("whisper wer", result["whisper_wer"]["wer"], flush=True)


def round_trip(args, voice, asr, kept, result) -> None:
    chosen = kept if args.round_trip == "all" else [
        kept[i] for i in sorted(np.random.default_rng(args.seed + 1).choice(
            len(kept), size=min(int(args.round_trip), len(kept)), replace=False))]
    before, start = load(), time.perf_counter()
    heard = [asr.transcribe(*voice.speak(p["reference"])) for p in chosen]
    table = utterance_errors([p["reference"] for p in chosen], heard)
    table.insert(0, "item_id", [p["item_id"] for p in chosen])
    result["round_trip"] = {
        "transcripts": len(chosen), "sampled": args.round_trip != "all", "reference_words": int(table.words.sum()),
        "wer": round(word_error_rate([p["reference"] for p in chosen], heard), 4),
        "mean_utterance_wer": round(float(table.wer.mean()), 4), "exact": int((table.wer == 0).sum()),
        "seconds": round(time.perf_counter() - start, 1), "voice_seed": args.seed,
        "decoding": f"beam {asr.config.beam_size}",
        "load_before": before, "load_after": load(),
        "worst": table.sort_values("wer", ascending=False).head(15)[
            ["item_id", "reference", "hypothesis", "wer"]].round(3).to_dict("records")}
    print("round trip", result["round_trip"]["wer"], flush=True)


if __name__ == "__main__":
    main()
